"""``tunesift score NAME`` and ``tunesift run NAME``, generated from the method registry and the recipes at
the moment a command is asked for, so a method registered after import (a plugin, a test) has its commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from tunesift.cli.options import (
    CountOpt,
    DataArg,
    OutFormatOpt,
    OutOpt,
    RateOpt,
    ScoresOutOpt,
    check_out_format,
    execution_params,
    executor_for,
    fail,
    input_options,
    make_command,
    option_param,
    option_values,
    param,
    probe,
    say_summary,
)
from tunesift.errors import TunesiftError
from tunesift.files import Files
from tunesift.options import Option
from tunesift.scorers import Method, check_words, discover


class _Generated(typer.core.TyperGroup):
    """A group whose commands come from a registry at the moment they are asked for, so a method registered
    after import (a plugin, a test) has its commands too. A command is built once, when first needed."""

    @staticmethod
    def names() -> list[str]:
        raise NotImplementedError

    @staticmethod
    def build(name: str) -> Callable[..., None]:
        raise NotImplementedError

    def _add(self, name: str) -> None:
        single = typer.Typer()
        single.command(name)(self.build(name))
        command = typer.main.get_command(single)
        command.name = name
        self.add_command(command, name)

    def list_commands(self, ctx: Any) -> list[str]:
        for name in self.names():
            if name not in self.commands:
                self._add(name)
        return super().list_commands(ctx)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in self.names():
            self._add(cmd_name)
        return super().get_command(ctx, cmd_name)


class ScoreGroup(_Generated):
    @staticmethod
    def names() -> list[str]:
        return list(discover())

    @staticmethod
    def build(name: str) -> Callable[..., None]:
        return score_command(discover()[name])


class RunGroup(_Generated):
    @staticmethod
    def names() -> list[str]:
        from tunesift.recipes import run_names

        return run_names()

    @staticmethod
    def build(name: str) -> Callable[..., None]:
        return run_command(name)


def score_command(info: type[Method]) -> Callable[..., None]:
    """``tunesift score NAME``: every option the scorer declares, plus input, output and executor options."""

    def body(**kw: Any) -> None:
        from tunesift import api

        try:
            Files().read("pool", kw["data"]).read_all(input_options(info, kw)).write("out", kw["out"], "scores").check()
            pool = api.read_pool(kw["data"], fmt=kw["format"], on_error=kw["on_error"], fields=kw["fields"])
            probe([kw["out"]])
            executor = executor_for(kw)
            table = api.score(info, pool, **option_values(info.options, kw), store_dir=kw["store"],
                              executor=executor, progress=True)  # fmt: skip
            api.write_scores(kw["out"], table)
            rejects = api.write_rejects(kw["out"], pool)
        except TunesiftError as err:
            fail(err)
        say_summary(executor)
        skipped = table.skipped()
        typer.echo(
            f"scored {len(table.rows) - sum(skipped.values())} of {len(table.rows)} records -> {kw['out']}"
            + (f"; skipped: {skipped}" if skipped else "")
            + (f"; rejects: {rejects}" if rejects else ""),
            err=True,
        )

    out = Annotated[Path, typer.Option("--out", help=f"SCORES.jsonl to write (index, id, {', '.join(info.columns)}, "
                                       "skip_reason), one line per input record.")]  # fmt: skip
    params = [param("data", DataArg), param("out", out), *(option_param(o) for o in info.options),
              *execution_params()]  # fmt: skip
    return make_command(body, params, info.summary)


def run_with_recipe(method: str, kw: dict[str, Any], score_options: dict[str, Any],
                    select_options: dict[str, Any] | None = None, recipe: Any = None) -> None:  # fmt: skip
    """Read, score and select with a recipe; say what was selected and how the executor ran."""
    from tunesift import api

    try:
        rate, count = kw["rate"], kw["count"]
        budget = None if rate is None and count is None else api.Budget(rate=rate, count=count)
        recipe = recipe or api.load_recipe(method)
        check_out_format(kw.get("out_format"))
        files = api.recipe_files(recipe, kw["data"], kw["out"], scores_out=kw["scores_out"],
                                 out_format=kw.get("out_format"), score_options=score_options).check()  # fmt: skip
        fields = kw["fields"] if kw["fields"] is not None else recipe.fields  # the command line's, else the recipe's
        pool = api.read_pool(kw["data"], fmt=kw["format"], on_error=kw["on_error"], fields=fields)
        probe([written[0] for _, _, written in files.writes])
        executor = executor_for(kw, recipe.executor)
        result = api.run_recipe(recipe, pool, kw["out"], budget, scores_out=kw["scores_out"],
                                select_options=select_options or None, store_dir=kw["store"], executor=executor,
                                progress=True, out_format=kw.get("out_format"), **score_options)  # fmt: skip
    except TunesiftError as err:
        fail(err)
    say_summary(executor)
    skipped = result.scores.skipped()
    typer.echo(
        f"selected {len(result.selection.indices)} of {result.selection.n_pool} records -> {kw['out']}"
        + (f"; {result.selection.why_empty}" if result.selection.why_empty else "")
        + (f"; {result.selection.why_short}" if result.selection.why_short else "")
        + (f"; skipped: {skipped}" if skipped else ""),
        err=True,
    )


def run_command(name: str) -> Callable[..., None]:
    """``tunesift run NAME`` for a built-in recipe: its scorer's options, its final selection's and cut's
    options (default: the recipe's own values), budget, outputs and executor options."""
    from dataclasses import replace

    from tunesift.recipes import CUT_RATE, DROP, KEEP, PER_QUESTION, THRESHOLD, load_recipe, with_per_question
    from tunesift.scorers import get_method
    from tunesift.selectors import get_selector

    recipe = load_recipe(name)
    scorer_options = get_method(recipe.scorer).options if recipe.scorer else ()
    final = recipe.steps[-1]["select"]
    # the final selector's own options, default the recipe's (which column it ranks by stays the recipe's)
    overrides = [_unset_help(o) for o in get_selector(final["method"]).options if o.name != "by"]
    has_cut = any("cut" in step for step in recipe.steps)
    text_filter = next((s["filter"]["column"] for s in recipe.steps
                        if "filter" in s and isinstance(s["filter"]["value"], list)), None)  # fmt: skip
    # a threshold to override: a numeric comparison (a flag column's "== 1" is no threshold)
    has_filter = any("filter" in s and not isinstance(s["filter"]["value"], list) and s["filter"]["op"] != "=="
                     for s in recipe.steps)  # fmt: skip

    def body(**kw: Any) -> None:
        chosen = recipe
        if has_cut and kw.get("cut_rate") is not None:
            steps = tuple({"cut": {**s["cut"], "rate": kw["cut_rate"]}} if "cut" in s else s for s in recipe.steps)
            chosen = replace(recipe, steps=steps)
        if has_filter and kw.get("threshold") is not None:
            steps = tuple({"filter": {**s["filter"], "value": kw["threshold"]}} if "filter" in s else s
                          for s in chosen.steps)  # fmt: skip
            chosen = replace(chosen, steps=steps)
        if text_filter and (kw.get("keep") is not None or kw.get("drop") is not None):
            if kw.get("keep") is not None and kw.get("drop") is not None:
                fail(TunesiftError("option 'keep': give --keep or --drop, not both"))
            keep = kw.get("keep") is not None
            flag, op, words = ("keep", "in", kw["keep"]) if keep else ("drop", "not in", kw["drop"])
            try:
                words = check_words(chosen.scorer, text_filter, words, flag)
            except TunesiftError as err:
                fail(err)
            steps = tuple({"filter": {**s["filter"], "op": op, "value": words}}
                          if "filter" in s and isinstance(s["filter"]["value"], list) else s
                          for s in chosen.steps)  # fmt: skip
            chosen = replace(chosen, steps=steps)
        try:
            chosen = with_per_question(chosen, kw.get("per_question"))
        except TunesiftError as err:
            fail(err)
        select_options = {o.name: kw[o.name] for o in overrides if kw[o.name] is not None}
        run_with_recipe(name, kw, option_values(scorer_options, kw, given_only=True), select_options, recipe=chosen)

    params = [param("data", DataArg), param("out", OutOpt), param("rate", RateOpt, None),
              param("count", CountOpt, None), *(option_param(o, unset=True) for o in scorer_options),
              *(option_param(o) for o in overrides), *([option_param(CUT_RATE)] if has_cut else []),
              *([option_param(THRESHOLD)] if has_filter else []),
              *([option_param(KEEP), option_param(DROP)] if text_filter else []), option_param(PER_QUESTION),
              param("scores_out", ScoresOutOpt, None), param("out_format", OutFormatOpt, None),
              *execution_params()]  # fmt: skip
    return make_command(body, params, recipe.description)


def _unset_help(option: Option) -> Option:
    """A select option whose default is the recipe's own value."""
    from dataclasses import replace

    return replace(option, type=option.type | None, default=None,
                   help=f"{option.help} (default: the recipe's, {option.default})")  # fmt: skip
