"""The one place that knows the scorers: their columns, default selection rules and options.

Recipes check their ``score`` block and their column names against it, ``tunesift select`` takes a score
column's default rule from it, a subset record takes its score fields from it, and the CLI builds every
``score`` and ``run`` command's per-method options from its :class:`Option` declarations, so each option
is declared once, with its help text, and reaches the scoring function under the same name.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunesift.errors import ConfigError


@dataclass(frozen=True)
class Option:
    """A scorer option: the scoring function's keyword ``name``, its type and default, the help a user sees,
    and the CLI flag (``--name-with-dashes`` unless ``flag`` says otherwise). ``split`` reads a
    comma-separated list."""

    name: str
    type: Any
    default: Any
    help: str
    flag: str | None = None
    split: bool = False

    @property
    def cli_flag(self) -> str:
        return self.flag or "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ScorerInfo:
    """A registered scorer. ``function`` ("module:name") scores a whole pool into a ScoreTable;
    ``columns`` are what recipe steps may name; ``subset_columns`` the fields a subset record gets (the
    first is ranked by); ``default_rule`` what ``tunesift select`` applies to ``score_field``."""

    name: str
    summary: str
    function: str
    columns: tuple[str, ...]
    subset_columns: tuple[str, ...]
    score_field: str
    default_rule: str
    options: tuple[Option, ...]
    needs: dict[str, str] = field(default_factory=dict)  # a column that only exists with an option

    def load(self) -> Callable[..., Any]:
        module, _, attr = self.function.partition(":")
        return getattr(importlib.import_module(module), attr)

    def option_names(self) -> set[str]:
        return {o.name for o in self.options}


# ----- options, each declared once -----

_MODEL_HELP = (
    "Packaged model short name (smollm2-135m-instruct, gemma-3-270m), a local HF checkpoint directory, or a "
    "hub id (org/name, from the local HF cache; downloaded where the network allows); with --base-url, "
    "the name the server serves."
)
DTYPE = Option("dtype", str | None, None, "auto | float32 | bfloat16 | float16: auto is bfloat16 on a CUDA GPU that "
               "has it, else float32. Part of the cache key.")  # fmt: skip
# An OpenAI-compatible server, declared once for every scorer that can use one.
BASE_URL = Option("base_url", str | None, None, "OpenAI-compatible server, e.g. http://localhost:8000/v1 (vLLM) or "
                  "https://api.openai.com/v1.")  # fmt: skip
API_KEY_ENV = Option("api_key_env", str, "OPENAI_API_KEY", "Environment variable holding the server's API key.")
CONCURRENCY = Option("concurrency", int, 8, "Requests in flight at once.")
TIMEOUT = Option("timeout", float, 60.0, "Seconds before a request is abandoned (then retried).")
RETRIES = Option("retries", int, 4, "Retries with exponential backoff on 429, 5xx and network errors.")
TOKENIZER = Option("tokenizer", str | None, None, "With --base-url: the tokenizer whose token ids are sent (checkpoint "
                   "folder or hub id; default: --model, where that resolves locally).")  # fmt: skip
# A causal LM in this process, or on a server (prompt log-probabilities, as vLLM serves them).
LM_OPTIONS = (DTYPE, BASE_URL, TOKENIZER, API_KEY_ENV, CONCURRENCY, TIMEOUT, RETRIES)
TOKEN_BUDGET = Option("token_budget", int, 4096, "Tokens per forward batch (batch size x longest text).",
                      flag="--batch-tokens")  # fmt: skip
CHUNK_SIZE = Option(
    "chunk_size",
    int | None,
    None,
    "Samples scored between two writes to the score store (a kill loses at most one chunk; default 128, judge 64); "
    "on Ray, the samples of one actor batch.",
)
TURNS = Option("turn_rule", str, "mean", "How a conversation's turn scores combine: mean, min, max, last, wmean.",
               flag="--turns")  # fmt: skip

IFD_OPTIONS = (
    Option("model", str, "smollm2-135m-instruct", _MODEL_HELP),
    Option("variant", str, "cherry", "cherry: ratio of mean losses; superfilter: ratio of perplexities, no template."),
    Option(
        "template",
        str | None,
        None,
        "Prompt template: alpaca, wiz, vicuna, plain, chat. Default: alpaca (cherry), plain (superfilter).",
    ),
    Option("max_length", int | None, None, "Token budget M per text. Default: 512 (cherry), 1024 (superfilter)."),
    TURNS,
    TOKEN_BUDGET,
    CHUNK_SIZE,
    *LM_OPTIONS,
)
SELECTIT_OPTIONS = (
    Option(
        "models",
        str,
        "smollm2-135m-instruct",
        "Raters, comma-separated (packaged names or checkpoint dirs); "
        "two or more give the model level. SelectIT wants instruction-tuned raters, the larger the better: a "
        "base model such as gemma-3-270m rated no better than chance in our measurements.",
        split=True,
    ),
    Option("k", int, 5, "Number of rating prompts pooled at the sentence level.", flag="--k"),
    Option("alpha", float, 0.2, "Penalty on the spread of the prompts' token scores."),
    Option(
        "prompts_file",
        Path | None,
        None,
        "Your own rating sentences, one per line (default: tunesift's five).",
        flag="--prompts",
    ),
    Option(
        "level", str | None, None, "token | sentence | model (default: model with two or more raters, else sentence)."
    ),
    Option("token_prompt", int, 0, "Token level: the 0-based index of the one prompt used."),
    Option(
        "token_rule", str, "paper", "paper (METHODS.md) or authors-code (an extra softmax, as in the authors' code)."
    ),
    TURNS,
    TOKEN_BUDGET,
    CHUNK_SIZE,
    *LM_OPTIONS,
)
JUDGE_OPTIONS = (
    Option(
        "model",
        str | None,
        None,
        "Judge: with --base-url, the model name the endpoint serves; without, a local "
        "model (packaged name or checkpoint dir; default smollm2-135m-instruct) read through its probabilities of "
        "the scores 0-5.",
    ),
    BASE_URL,
    API_KEY_ENV,
    CONCURRENCY,
    TIMEOUT,
    RETRIES,
    DTYPE,
    TOKEN_BUDGET,
    CHUNK_SIZE,
)
INDICATOR_OPTIONS = (
    Option("rule", Path | None, None, "Indicator rule JSON written by fit-indicators.", flag="--rule"),
    Option("model", str, "smollm2-135m-instruct", "Model for token lengths and response perplexity."),
    Option("knn", int, 6, "kNN-i: distance to the i-th nearest other sample (MiniLM).", flag="--knn"),
    Option("max_length", int, 1024, "Tokens of the response scored for perplexity."),
    TOKEN_BUDGET,
    *LM_OPTIONS,
)
_RATER_HELP = "Rater: any causal LM (a DEITA scorer checkpoint where you have one). " + _MODEL_HELP
DEITA_OPTIONS = (
    Option("model", str, "smollm2-135m-instruct", _RATER_HELP),
    TOKEN_BUDGET,
    CHUNK_SIZE,
    *LM_OPTIONS,
)

NUGGETS_OPTIONS = (
    Option("model", str, "smollm2-135m-instruct", "The model whose one-shot gain is measured. " + _MODEL_HELP),
    Option(
        "anchors",
        Path | None,
        None,
        "Anchor tasks: a pool file of your own (every valid record; default: a "
        "seeded sample of --n-anchors of the pool).",
    ),
    Option("n_anchors", int, 100, "Anchors sampled from the pool when no --anchors file is given (the paper: 100)."),
    Option("anchor_seed", int, 0, "Seed of that sample."),
    TOKEN_BUDGET,
    CHUNK_SIZE,
    *LM_OPTIONS,
)

INSTAG_OPTIONS = (
    Option("model", str | None, None, "Tagger: with --base-url, the model name the endpoint serves; without, a local "
           "causal LM generating greedily (default smollm2-135m-instruct; a 135M model rarely writes valid JSON)."),
    BASE_URL,
    API_KEY_ENV,
    CONCURRENCY,
    TIMEOUT,
    RETRIES,
    Option("max_new_tokens", int, 512, "Longest tag list the tagger may write, in tokens."),
    Option("min_tag_count", int, 20, "Frequency filtering: tags seen fewer times over the pool are dropped (the "
           "paper: 20, over a large pool; lower it for a small one)."),
    Option("semantic", bool, True, "Merge tags within cosine distance 0.05 (all-MiniLM-L6-v2, DBSCAN), as the paper "
           "does with PhraseBERT.", flag="--semantic/--no-semantic"),
    DTYPE,
    CHUNK_SIZE,
)  # fmt: skip

MODS_OPTIONS = (
    Option("reward_model", str | None, None, "Reward model: a Hugging Face sequence-classification checkpoint with "
           "one score (folder or hub id; MoDS uses OpenAssistant/reward-model-deberta-v3-large-v2)."),
    Option("batch_size", int, 16, "Pairs scored per forward pass."),
    DTYPE,
    CHUNK_SIZE,
)  # fmt: skip

SCORERS: dict[str, ScorerInfo] = {
    info.name: info
    for info in (
        ScorerInfo(
            "ifd",
            "IFD (Cherry LLM / Superfiltering): how much the instruction helps the model predict the response.",
            "tunesift.scoring:score_ifd",
            ("ifd", "loss_cond", "loss_direct", "n_tokens"),
            ("ifd", "loss_cond", "loss_direct", "n_tokens"),
            "ifd",
            "cherry",
            IFD_OPTIONS,
        ),
        ScorerInfo(
            "selectit",
            "SelectIT: the model rates each sample 1-5; its certainty weighs the rating (token, "
            "sentence, model level).",
            "tunesift.scoring:score_selectit",
            ("selectit", "s_model"),
            ("selectit",),
            "selectit",
            "top",
            SELECTIT_OPTIONS,
        ),
        ScorerInfo(
            "alpagasus",
            "AlpaGasus: an LLM judge rates each response's accuracy 0-5 (unreadable replies: null, raw reply kept).",
            "tunesift.score_judge:score_alpagasus",
            ("alpagasus",),
            ("alpagasus", "judge_reply"),
            "alpagasus",
            "alpagasus",
            JUDGE_OPTIONS,
        ),
        ScorerInfo(
            "self-curation",
            "Self-curation (Humpback): a judge rates each pair on the paper's 5-point scale; keep the 5s.",
            "tunesift.score_judge:score_self_curation",
            ("self_curation",),
            ("self_curation", "judge_reply"),
            "self_curation",
            "self-curation",
            JUDGE_OPTIONS,
        ),
        ScorerInfo(
            "indicators",
            "InstructMining's indicators: lengths, response perplexity, MTLD, kNN-i; with --rule, the predicted loss.",
            "tunesift.score_indicators:score_indicators",
            ("len_instruction", "len_input", "len_response", "ppl", "mtld", "knn", "instructmining"),
            ("len_instruction", "len_input", "len_response", "ppl", "mtld", "knn", "instructmining"),
            "instructmining",
            "bottom",
            INDICATOR_OPTIONS,
            {"instructmining": "rule"},
        ),
        ScorerInfo(
            "deita",
            "DEITA: the rater's expected complexity and quality (1-6) per turn; EVOL = sum of complexity x quality.",
            "tunesift.scorers.deita:score_deita",
            ("deita", "deita_complexity", "deita_quality"),
            ("deita", "deita_complexity", "deita_quality"),
            "deita",
            "top",
            DEITA_OPTIONS,
        ),
        ScorerInfo(
            "instag",
            "INSTAG: an LLM tags each query's intentions; tags normalised over the pool; complexity = number of tags.",
            "tunesift.scorers.instag:score_instag",
            ("instag",),
            ("instag", "instag_tags"),
            "instag",
            "top",
            INSTAG_OPTIONS,
        ),
        ScorerInfo(
            "mods",
            "MoDS quality: a reward model's score of each (instruction, response).",
            "tunesift.scorers.mods:score_mods",
            ("mods_reward",),
            ("mods_reward",),
            "mods_reward",
            "top",
            MODS_OPTIONS,
        ),
        ScorerInfo(
            "nuggets",
            "Nuggets: the share of anchor tasks the model answers better with the sample as a one-shot "
            "demonstration than zero-shot.",
            "tunesift.scorers.nuggets:score_nuggets",
            ("nuggets", "nuggets_wins", "nuggets_anchors"),
            ("nuggets", "nuggets_wins", "nuggets_anchors"),
            "nuggets",
            "top",
            NUGGETS_OPTIONS,
        ),
    )
}
# With no scorer, a recipe's rows carry each record's response length.
NO_SCORER_COLUMNS = ("response_chars",)


def get_scorer(name: str) -> ScorerInfo:
    try:
        return SCORERS[name]
    except KeyError:
        raise ConfigError("scorer", f"unknown scorer {name!r}; choose one of {', '.join(SCORERS)}") from None


def columns_of(scorer: str | None) -> tuple[str, ...]:
    """What recipe steps may name after ``scorer`` (None: no scorer)."""
    return NO_SCORER_COLUMNS if scorer is None else get_scorer(scorer).columns


def default_rule(score_field: str) -> str:
    """The rule ``tunesift select`` applies to a score column unless told otherwise."""
    for info in SCORERS.values():
        if info.score_field == score_field or info.subset_columns[0] == score_field:
            return info.default_rule
    return "top"


def subset_columns(score_field: str) -> tuple[str, ...]:
    """The fields a subset record gets for a score column (the column alone for an unknown one)."""
    for info in SCORERS.values():
        if info.subset_columns[0] == score_field:
            return info.subset_columns
    return (score_field,)


def check_options(scorer: str, options: dict[str, Any], where: str = "score") -> None:
    """Every option must be one the scorer declares (named in the error otherwise)."""
    accepted = get_scorer(scorer).option_names()
    unknown = sorted(set(options) - accepted)
    if unknown:
        takes = ", ".join(sorted(accepted))
        raise ConfigError(
            unknown[0].replace("_", "-"), f"{where}: scorer {scorer!r} has no such option; it takes {takes}"
        )


# Every per-unit scorer class (the Scorer contract): the conformance suite checks each one.
UNIT_SCORERS = (
    "tunesift.scorers.ifd:IFD",
    "tunesift.scorers.selectit:SelectITRating",
    "tunesift.scorers.judge:AlpaGasus",
    "tunesift.scorers.self_curation:SelfCuration",
    "tunesift.scorers.indicators:IndicatorLM",
    "tunesift.embeddings:MiniLMEmbedding",
    "tunesift.embeddings:LMEmbedding",
    "tunesift.scorers.deita:DEITA",
    "tunesift.scorers.nuggets:Nuggets",
    "tunesift.scorers.instag:InsTag",
    "tunesift.scorers.mods:MoDSReward",
    "tunesift.scorers.mods:MoDSNecessity",
)


def unit_scorer_classes() -> list[type]:
    classes = []
    for path in UNIT_SCORERS:
        module, _, attr = path.partition(":")
        classes.append(getattr(importlib.import_module(module), attr))
    return classes
