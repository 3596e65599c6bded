"""The arms of a race: the default menu, the targeted methods, balanced random and distilled heads, each checked."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError
from tunesift.eval.advise.config import DEFAULT_PROXY, AdviseConfig

#: The default menu: baselines and the model methods that need no endpoint (their recipes, by arm name).
MENU: dict[str, dict[str, Any]] = {
    "longest": {"recipe": "longest"},
    "ifd": {"recipe": "cherry"},
    "superfiltering": {"recipe": "superfiltering"},
    # the token level (one rating prompt): sentence level rates with five, five times the cost on a CPU
    "selectit": {"recipe": "selectit", "options": {"level": "token"}},
    "kcenter": {"recipe": "kcenter"},
}
#: The targeted methods, on the menu when a query set is given.
TARGETED: dict[str, dict[str, Any]] = {"rds": {"recipe": "rds"}, "embed": {"recipe": "embed"},
                                       "bm25": {"recipe": "bm25"}}  # fmt: skip
#: Targeted methods raced when asked for (--methods): LESS trains a warm-up and takes a gradient per record and
#: checkpoint, several times RDS+'s cost.
ON_REQUEST: dict[str, dict[str, Any]] = {"less": {"recipe": "less"}}
BALANCED = "balanced"  # random, balanced by the pool's source field: on the menu where the pool has one
DISTILL = "distill:"  # distill:NAME races a head distilled from the method NAME (the teacher)
#: A distill arm's teacher labels a quarter of the proxy (distill labels a sample of a larger pool; so does the race).
DISTILL_SHARE = 4
METHODS_WITH_A_SCORER_MODEL = ("cherry", "superfiltering", "selectit", "rds", "less")


def _source_field(pool: Any) -> str | None:
    from tunesift.selectors.random import SOURCE_FIELDS

    for sample in pool:
        record = getattr(sample, "record", None)
        if isinstance(record, dict):
            found = next((f for f in SOURCE_FIELDS if record.get(f) is not None), None)
            if found:
                return found
    return None


def arms(config: AdviseConfig, pool: Any, out: Path) -> dict[str, dict[str, Any]]:
    """The method arms (name -> compare's {recipe, options}), every name checked; random is compare's own arm."""
    from tunesift.recipes import builtin_names

    source = _source_field(pool)
    if config.methods is None:
        names = [*MENU, *([BALANCED] if source else []), *(TARGETED if config.query else [])]
    else:
        names = config.methods
    known = {*MENU, *TARGETED, *ON_REQUEST, BALANCED, *builtin_names()}
    chosen: dict[str, dict[str, Any]] = {}
    for name in names:
        if Path(name).suffix in (".yaml", ".yml") and Path(name).is_file():  # a recipe of the user's own
            chosen[Path(name).stem] = {"recipe": str(Path(name).resolve())}
            continue
        if name.startswith(DISTILL):
            chosen[name] = distill_arm(name, config)
            continue
        if name not in known:
            raise ConfigError("methods", f"unknown method {name!r}; choose from {', '.join(sorted(known))} or give a "
                              "recipe file (.yaml)")  # fmt: skip
        if name == "random":
            continue  # every race has its random arm
        if name == BALANCED:
            if source is None:
                raise ConfigError("methods", "balanced random needs a dataset or source field in the pool's records")
            recipe = out / "recipes" / "balanced.yaml"
            recipe.parent.mkdir(parents=True, exist_ok=True)
            recipe.write_text(f"name: balanced\ndescription: random, balanced by {source}\nsteps:\n"
                              f"  - select: {{method: random, balance: {source}, of: pool}}\n")  # fmt: skip
            chosen[name] = {"recipe": str(recipe)}
            continue
        spec = dict({**MENU, **TARGETED, **ON_REQUEST}.get(name, {"recipe": name}))
        options: dict[str, Any] = dict(spec.get("options", {}))
        if {spec["recipe"], name} & {*TARGETED, *ON_REQUEST}:
            if not config.query:
                raise ConfigError("query", f"method {name!r} ranks the pool against a query set: give --query FILE")
            options["query"] = list(config.query)
        if config.scorer_model and spec["recipe"] in METHODS_WITH_A_SCORER_MODEL:
            options["models" if spec["recipe"] == "selectit" else "model"] = (
                [config.scorer_model] if spec["recipe"] == "selectit" else config.scorer_model
            )
        if options:
            spec["options"] = options
        chosen[name] = spec
    return chosen


def distill_arm(name: str, config: AdviseConfig) -> dict[str, Any]:
    """The arm ``distill:TEACHER``: the teacher labels a quarter of the proxy (at least 50 records), the head scores
    the rest. ``force``: the race is the judge of a weak head, so its gate does not stop the race (its figures are
    in the arm's score configuration)."""
    from tunesift.scorers import check_options

    teacher = name[len(DISTILL) :]
    if not teacher:
        raise ConfigError("methods", f"{name!r}: name the teacher, e.g. distill:alpagasus")
    proxy = config.proxy_size or DEFAULT_PROXY
    n_label = max(50, proxy // DISTILL_SHARE)
    options = {"teacher": teacher, "teacher_options": config.teacher_options, "n_label": n_label, "force": True}
    given = check_options("distill", options, where=f"advise arm {name!r}")["teacher_options"]
    if proxy < 2 * 50:
        raise ConfigError("methods", f"{name}: a distilled head needs 50 labelled records and as many more to score; "
                          f"the proxy has {proxy}")  # fmt: skip
    options["teacher_options"] = {k: str(v) if isinstance(v, Path) else v for k, v in given.items()}
    return {"recipe": "distill", "options": options}
