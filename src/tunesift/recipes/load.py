"""Methods as data: a YAML recipe names a scorer and the selection steps after it.

A recipe is checked whole before anything runs (unknown scorer, option, step or column is an error naming
it), then executed in-process: score the pool (cached), then apply the steps in order to the list of
candidate records::

    name: cherry
    description: Cherry LLM ...
    budget: {rate: 0.05}              # optional default when the user gives none ("all": keep every candidate)
    score: {scorer: ifd, variant: cherry}
    steps:
      - dedup: {method: minhash, threshold: 0.7}   # exact | minhash | semantic; keeps the first of each group
      - filter: "ifd <= 1"            # COLUMN OP NUMBER; unscored samples never pass
      - rank: {by: ifd, order: desc}  # ties: pool order
      - cut: {rate: 0.2, of: pool}    # an intermediate budget (Superfiltering.D's k1)
      - select: {method: top, of: candidates}   # the last step, to the run's budget

``select`` methods: every registered selector (:mod:`tunesift.selectors`: top, random, longest, kcenter,
facility-location, deita, cluster-top, dq, instag), each with its own declared options. ``of`` says what a
rate counts: the whole ``pool`` or the
``candidates`` left by the steps before. The built-in recipes are the YAML files beside this module.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesift.data.schemas import FieldMap
from tunesift.errors import ConfigError, InputError
from tunesift.options import Option
from tunesift.scorers import check_options, check_words, column_kind, columns_of, discover
from tunesift.selectors.base import Budget, get_selector
from tunesift.selectors.base import discover as discover_selectors

BUILTIN_DIR = Path(__file__).parent
_FILTER = re.compile(r"^\s*([A-Za-z_][\w]*)\s*(<=|>=|==|!=|<|>)\s*(-?[\d.]+(?:[eE][-+]?\d+)?)\s*$")
# a text column against words: "lang in [en, de]", "lang not in [zh]", "lang == en"
_TEXT_FILTER = re.compile(
    r"^\s*([A-Za-z_][\w]*)\s+(not in|in)\s*\[([^\]]*)\]\s*$|^\s*([A-Za-z_][\w]*)\s*(==|!=)\s*"
    r"([A-Za-z_][\w-]*)\s*$"
)
STEP_KINDS = ("decontaminate", "dedup", "per_question", "filter", "rank", "cut", "select")
EXECUTOR_KEYS = {"name", "ray_address", "actors", "gpus_per_actor", "cpus_per_actor"}

# Options of a run that change the recipe's final selection (default: the recipe's own values): every option
# of the final select step's selector, declared with the selector.
CUT_RATE = Option("cut_rate", float | None, None, "Share of the pool kept by the cut before the final selection "
                  "(Superfiltering.D's k1; default: the recipe's, 0.2).", flag="--k1-rate")  # fmt: skip
THRESHOLD = Option("threshold", float | None, None, "The value the recipe's filter compares against (default: the "
                   "recipe's own, e.g. 4.5 for alpagasus and self-curation, 1 for cherry).")  # fmt: skip
KEEP = Option("keep", list[str] | None, None, "The values the recipe's text filter keeps, e.g. en,de for lang "
              "(default: the recipe's own).", split=True)  # fmt: skip
DROP = Option("drop", list[str] | None, None, "The values the recipe's text filter drops instead, e.g. zh,ko for "
              "lang (every other value is kept).", split=True)  # fmt: skip
PER_QUESTION = Option("per_question", str | None, None, "Several responses per question: keep one of each, by "
                      "shortest-correct (verified, fewest thinking tokens), best:COLUMN (e.g. best:grape) or all; "
                      "a step before the final selection.")  # fmt: skip


def with_per_question(recipe: Recipe, keep: str | None) -> Recipe:
    """The recipe with a ``per_question`` step right before its final selection (the order the steps before gave
    is kept); ``keep`` is checked before any work."""
    from dataclasses import replace

    from tunesift.recipes.per_question import check_keep

    if keep is None:
        return recipe
    step = {"per_question": {"keep": check_keep(keep)}}
    return replace(recipe, steps=(*recipe.steps[:-1], step, recipe.steps[-1]))


@dataclass(frozen=True)
class Recipe:
    """A checked recipe: ``score`` holds the scorer name under ``scorer`` and its options."""

    name: str
    description: str
    steps: tuple[dict[str, Any], ...]
    score: dict[str, Any] = field(default_factory=dict)
    budget: Budget | None = None
    source: str = ""
    keep_all: bool = False  # with no budget from the user, keep every candidate (AlpaGasus keeps all >= 4.5)
    executor: dict[str, Any] | None = None  # where it runs unless the user says: {name: ray, actors: 2, ...}
    fields: FieldMap | None = None  # the pool's columns (a recipe for a reasoning pool in columns of its own)

    @property
    def scorer(self) -> str | None:
        return self.score.get("scorer")


def builtin_names() -> list[str]:
    return sorted(p.stem for p in BUILTIN_DIR.glob("*.yaml"))


def run_names() -> list[str]:
    """What ``tunesift run NAME`` takes: every built-in recipe, and every registered method no built-in recipe
    scores with (it runs as its default recipe)."""
    used = _builtin_scorers()
    return sorted({*builtin_names(), *(m for m in discover() if m not in used)})


@functools.cache
def _builtin_scorers() -> frozenset[str | None]:
    """The scorers the built-in recipes use (the files ship with the package: read once)."""
    return frozenset(load_recipe(name).scorer for name in builtin_names())


def default_recipe(method: str) -> Recipe:
    """A registered method's default recipe: score with it, then its default rule over its own column."""
    from tunesift.recipes.steps import rule_steps
    from tunesift.scorers import get_method

    cls = get_method(method)
    return Recipe(method, cls.summary, tuple(rule_steps(cls.default_rule, cls.score_field())), {"scorer": method})


def load_recipe(name_or_path: str | Path) -> Recipe:
    """A built-in recipe by name, or a user's YAML file, checked whole."""
    import yaml

    from tunesift.yamltext import load_yaml

    path = Path(name_or_path)
    if not path.suffix and (BUILTIN_DIR / f"{name_or_path}.yaml").exists():
        path = BUILTIN_DIR / f"{name_or_path}.yaml"
    elif not path.suffix and str(name_or_path) in discover():
        return default_recipe(str(name_or_path))
    elif not path.exists():
        known = ", ".join(builtin_names())
        raise ConfigError("recipe", f"no recipe {str(name_or_path)!r}: give a YAML file or one of {known}")
    try:
        raw = load_yaml(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise InputError(f"cannot read the recipe: {err}", path=path) from None
    return parse_recipe(raw, source=str(path))


def parse_filter(text: str) -> dict[str, Any] | None:
    """A filter step's text as its body: a number comparison (``ifd <= 1``) or a text column against words
    (``lang in [en, de]``, ``lang not in [zh]``, ``lang == en``); None when it is neither."""
    match = _FILTER.match(text)
    if match:
        return {"column": match.group(1), "op": match.group(2), "value": float(match.group(3))}
    match = _TEXT_FILTER.match(text)
    if not match:
        return None
    if match.group(1):
        words = [w.strip().strip("'\"") for w in match.group(3).split(",") if w.strip()]
        return {"column": match.group(1), "op": match.group(2), "value": words}
    return {"column": match.group(4), "op": "in" if match.group(5) == "==" else "not in", "value": [match.group(6)]}


def _decontaminate_step(body: Any, source: str, where: str, bad: Any) -> dict[str, Any]:
    """A ``decontaminate`` step checked: ``against`` (evaluation set names, or files read beside the recipe),
    ``mode``, ``n``, ``threshold``; every file must exist."""
    from tunesift.data.evalsets import EVAL_SETS
    from tunesift.recipes.decontaminate import check_decontaminate

    body = {"against": body} if isinstance(body, (str, list)) else dict(body or {})
    extra = set(body) - {"against", "mode", "n", "threshold"}
    if extra:
        raise bad(f"decontaminate: unknown option(s) {sorted(extra)}", where)
    try:
        against, mode, n, threshold = check_decontaminate(body.get("against"), body.get("mode", "tulu"),
                                                          body.get("n"), body.get("threshold"))  # fmt: skip
    except ConfigError as err:
        raise bad(f"decontaminate: {err}", where) from None
    folder = Path(source).parent if Path(source).is_file() else Path(".")
    resolved = [a if a in EVAL_SETS or Path(a).is_absolute() else str(folder / a) for a in against]
    missing = [a for a in resolved if a not in EVAL_SETS and not Path(a).exists()]
    if missing:
        raise bad(f"decontaminate: no evaluation set or file {missing[0]!r}; the sets are {', '.join(EVAL_SETS)}",
                  where)  # fmt: skip
    return {"against": resolved, "mode": mode, "n": n, "threshold": threshold}


def _beside(source: str, scorer: str, score: dict[str, Any]) -> dict[str, Any]:
    """The files a recipe file's scorer options name (a query set, anchors, a rule), relative paths read from the
    recipe's own folder, as a user who keeps them together expects, not from wherever the command runs."""
    from tunesift.scorers import get_method

    folder = Path(source).parent
    if not Path(source).is_file():
        return {}
    resolved = {}
    for option in get_method(scorer).options:
        value = score.get(option.name)
        if not option.reads_file or value is None:
            continue
        many = isinstance(value, (list, tuple))
        paths = [v if Path(v).is_absolute() else str(folder / v) for v in (value if many else [value])]
        resolved[option.name] = paths if many else paths[0]
    return resolved


def parse_recipe(raw: Any, source: str = "<recipe>") -> Recipe:
    """Check a recipe's structure, scorer, options, steps and columns before anything runs."""

    def bad(message: str, key: str | None = None) -> InputError:
        return InputError(message, path=source, field=key)

    if not isinstance(raw, dict):
        raise bad("a recipe is a mapping with name, description, score and steps")
    unknown = set(raw) - {"name", "description", "budget", "score", "steps", "executor", "fields"}
    if unknown:
        raise bad(f"unknown key(s) {sorted(unknown)}", sorted(unknown)[0])
    name = raw.get("name") or Path(source).stem
    try:  # which column holds which part, for a pool in columns of its own (the command line's --fields wins)
        fields = FieldMap.parse(raw.get("fields"))
    except ConfigError as err:
        raise bad(err.message, "fields") from None
    score = dict(raw.get("score") or {})
    scorer = score.get("scorer")
    if score and scorer not in discover():
        raise bad(f"unknown scorer {scorer!r}; choose one of {', '.join(discover())}", "score.scorer")
    if scorer:
        check_options(scorer, {k: v for k, v in score.items() if k != "scorer"}, where=f"{source}: score")
        score.update(_beside(source, scorer, score))
    budget = None
    keep_all = raw.get("budget") == "all"
    if raw.get("budget") is not None and not keep_all:
        try:
            budget = Budget(**raw["budget"])
        except (TypeError, ConfigError) as err:
            raise bad(f"bad budget: {err}", "budget") from None
    steps = raw.get("steps")
    if not isinstance(steps, list) or not steps:
        raise bad("needs a non-empty list of steps", "steps")
    columns = columns_of(scorer)
    checked = []
    for number, step in enumerate(steps):
        where = f"steps[{number}]"
        if not isinstance(step, dict) or len(step) != 1:
            raise bad(f"each step is one mapping of one of {', '.join(STEP_KINDS)}", where)
        if next(iter(step)) not in STEP_KINDS:
            raise bad(f"unknown step {next(iter(step))!r}; each step is one of {', '.join(STEP_KINDS)}", where)
        kind, body = next(iter(step.items()))
        if kind == "filter":
            body = parse_filter(str(body))
            if body is None:
                raise bad(f"filter {step['filter']!r}: expected 'COLUMN OP NUMBER' or 'COLUMN in [WORD, ...]' over "
                          f"{', '.join(columns)}", where)  # fmt: skip
            if body["column"] not in columns:
                writer = f"scorer {scorer!r}" if scorer else "a recipe without a scorer"
                raise bad(f"filter {step['filter']!r}: unknown column {body['column']!r}: {writer} writes "
                          f"{', '.join(columns)}", where)  # fmt: skip
            holds = column_kind(scorer, body["column"])
            if body["op"] in ("in", "not in"):
                if holds != "text":
                    raise bad(f"filter {step['filter']!r}: {body['column']!r} holds a {holds}, not text: compare it "
                              f"as 'COLUMN OP NUMBER'" if holds in ("number", "bool") else
                              f"filter {step['filter']!r}: {body['column']!r} holds a {holds}, which no filter "
                              "compares", where)  # fmt: skip
                try:  # a built-in recipe's words are ours: its values are not looked up (langid's model: 1 s)
                    body["value"] = check_words(scorer, body["column"], body["value"], "filter",
                                                values=Path(source).parent != BUILTIN_DIR)  # fmt: skip
                except ConfigError as err:
                    raise bad(f"filter {step['filter']!r}: {err.message}", where) from None
            elif holds not in ("number", "bool"):
                raise bad(f"filter {step['filter']!r}: {body['column']!r} holds {holds}, not a number"
                          + (f": use '{body['column']} in [WORD, ...]'" if holds == "text" else ""), where)  # fmt: skip
        elif kind == "rank":
            body = {"by": body} if isinstance(body, str) else dict(body or {})
            if body.get("by") not in columns or body.get("order", "desc") not in ("asc", "desc"):
                raise bad(f"rank needs by: one of {', '.join(columns)} and order: asc|desc", where)
        elif kind == "dedup":
            from tunesift.recipes.dedup import check_dedup

            body = {"method": body} if isinstance(body, str) else dict(body or {})
            extra = set(body) - {"method", "threshold", "on", "normalise", "clusters"}
            if extra:
                raise bad(f"dedup: unknown option(s) {sorted(extra)}", where)
            try:
                check_dedup(
                    body.get("method", ""),
                    body.get("threshold"),
                    body.get("on"),
                    body.get("clusters"),
                    normalise=bool(body.get("normalise")),
                )
            except ConfigError as err:
                raise bad(f"dedup: {err}", where) from None
        elif kind == "decontaminate":
            body = _decontaminate_step(body, source, where, bad)
        elif kind == "per_question":
            from tunesift.recipes.per_question import check_keep

            body = {"keep": body} if isinstance(body, str) else dict(body or {})
            if set(body) - {"keep"}:
                raise bad(f"per_question: unknown option(s) {sorted(set(body) - {'keep'})}", where)
            try:
                body["keep"] = check_keep(body.get("keep"))
            except ConfigError as err:
                raise bad(f"per_question: {err.message}", where) from None
        elif kind == "cut":
            body = dict(body or {})
            if body.get("of", "pool") not in ("pool", "candidates"):
                raise bad("cut: 'of' is pool or candidates", where)
            try:
                Budget(rate=body.get("rate"), count=body.get("count"))
            except ConfigError as err:
                raise bad(f"cut: {err}", where) from None
        else:
            body = dict(body or {})
            method = body.get("method")
            try:
                selector = get_selector(method)
            except ConfigError:
                raise bad(f"select needs method: one of {', '.join(discover_selectors())}", where) from None
            declared = {o.name for o in selector.all_options()}
            allowed = {"method", "of"} | declared
            extra = set(body) - allowed
            if extra:
                raise bad(f"select {method}: unknown option(s) {sorted(extra)}", where)
            try:
                selector(**{k: v for k, v in body.items() if k not in ("method", "of")})
            except ConfigError as err:
                raise bad(f"select {method}: {err}", where) from None
            if body.get("of", "pool") not in ("pool", "candidates"):
                raise bad("select: 'of' is pool or candidates", where)
            if "by" in declared and body.get("by", scorer and columns[0]) not in columns:
                raise bad(f"select {method}: by must be one of {', '.join(columns)}", where)
            if "labels" in declared and body.get("labels", "instag_tags") not in columns:
                raise bad(f"select {method}: needs a labels column ({body.get('labels', 'instag_tags')}), which "
                          f"{f'scorer {scorer!r}' if scorer else 'a recipe without a scorer'} does not write; score "
                          "with mig (INSTAG tags and DEITA ratings)", where)  # fmt: skip
            if number != len(steps) - 1:
                raise bad("select must be the last step", where)
        checked.append({kind: body})
    if "select" not in checked[-1]:
        raise bad("the last step must be a select", f"steps[{len(steps) - 1}]")
    executor = raw.get("executor")
    if executor is not None:
        executor = {"name": executor} if isinstance(executor, str) else executor
        if not isinstance(executor, dict):
            raise bad(f"executor is local or ray, or a mapping of {sorted(EXECUTOR_KEYS)}", "executor")
        if set(executor) - EXECUTOR_KEYS:
            raise bad(f"unknown key(s) {sorted(set(executor) - EXECUTOR_KEYS)}; known: {sorted(EXECUTOR_KEYS)}",
                      "executor")  # fmt: skip
        if executor.get("name") not in ("local", "ray"):
            raise bad(f"needs name: local or ray, got {executor.get('name')!r}", "executor.name")
        kinds = {"actors": (int,), "gpus_per_actor": (int, float), "cpus_per_actor": (int, float),
                 "ray_address": (str,)}  # fmt: skip
        for key, kind in kinds.items():
            value = executor.get(key)
            if value is not None and (isinstance(value, bool) or not isinstance(value, kind)):
                raise bad(f"expected {' or '.join(k.__name__ for k in kind)}, got {value!r}", f"executor.{key}")
    return Recipe(name, str(raw.get("description", "")), tuple(checked), score, budget, source, keep_all, executor,
                  fields)  # fmt: skip
