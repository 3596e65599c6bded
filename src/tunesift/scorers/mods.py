"""MoDS (Du et al., 2023, "MoDS: Model-oriented Data Selection for Instruction Tuning"): quality from a reward
model, a k-center seed of the high-quality set, then the "necessity" samples: those the seed-tuned model still
answers badly (docs/methods.md §9).

Followed from CASIA-LM/MoDS: ``quality-evaluation/quality-evaluation.py`` (the reward model's single logit for
``tokenizer(question, answer)``, the question being the instruction, then ``"\\n"`` and the input where there
is one), ``high-quality-data-extraction.py`` (keep ``reward > threshold``, 0.0 in the README),
``diverse-data-selection/`` (k-center greedy on sentence embeddings for the seed; all-MiniLM-L6-v2 here in
place of bert-base-uncased), ``inference/instruction_filter.py`` (the seed-tuned model answers every
high-quality instruction, greedy, in the prompt it was trained with) and
``necessity-evaluation/necessity-instruction-extraction.py`` (keep ``reward < threshold`` of those answers),
then ``merge.py`` (seed plus necessity samples).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tunesift.data.sample import prompt_text
from tunesift.models.registry import ResolvedModel
from tunesift.options import CHUNK_SIZE, DTYPE, Option
from tunesift.scorers.base import Progress, Scorer, Unit

MODS_VERSION = 1
MODS_COLUMNS = ("mods_reward",)
QUALITY_THRESHOLD = 0.0  # the README's threshold for high-quality data
NECESSITY_THRESHOLD = 0.0


#: MoDS's question: the instruction, and the input on the next line where there is one.
question = prompt_text


class MoDSReward(Scorer):
    """A unit per sample: the reward model's score of (question, the sample's response)."""

    method = "mods"
    summary = "MoDS quality: a reward model's score of each (instruction, response)."
    columns = MODS_COLUMNS
    options = (
        Option("reward_model", str | None, None, "Reward model: a Hugging Face sequence-classification checkpoint "
               "with one score (folder or hub id; MoDS uses OpenAssistant/reward-model-deberta-v3-large-v2)."),
        Option("batch_size", int, 16, "Pairs scored per forward pass (the reward model batches pairs, not tokens).",
               at_least=1),
        DTYPE,
        CHUNK_SIZE,
    )  # fmt: skip

    name = "mods"
    result_fields = ("mods_reward", "skip_reason")

    def __init__(self, reward_model: ResolvedModel, batch_size: int = 16, chunk_size: int | None = None) -> None:
        self.reward_model = reward_model
        self.batch_size = batch_size
        self.chunk_size = chunk_size or 128

    @classmethod
    def build(cls, pool: Any, executor: Any, *, reward_model: Any, batch_size: int, dtype: str | None,
              chunk_size: int | None) -> MoDSReward:  # fmt: skip
        from tunesift.models.reward import reward_ref

        return cls(reward_ref(reward_model, executor, dtype), batch_size, chunk_size)

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": "mods", "version": MODS_VERSION, "reward": self.reward_model.key()}

    def describe(self) -> str:
        return f"MoDS reward ({self.reward_model.name})"

    def load_backend(self, device: str | None = None) -> Any:
        from tunesift.models.reward import RewardModel

        return RewardModel.load(self.reward_model, device)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        scores = backend.score([(question(u.payload), u.payload.output) for u in units], self.batch_size)
        if on_progress is not None:
            on_progress(len(units))
        return [{"mods_reward": float(s), "skip_reason": None} for s in scores]


class MoDSNecessity(Scorer):
    """A unit per sample: the seed-tuned model's greedy answer and the reward model's score of it."""

    name = "mods_necessity"
    result_fields = ("mods_answer", "mods_answer_reward", "skip_reason")

    def __init__(self, model: ResolvedModel, reward_model: ResolvedModel, template: str = "alpaca",
                 max_new_tokens: int = 256, batch_size: int = 8, chunk_size: int | None = None) -> None:  # fmt: skip
        self.model = model
        self.reward_model = reward_model
        self.template = template
        self.max_new_tokens = max_new_tokens
        self.batch_size = batch_size
        self.chunk_size = chunk_size or 32

    def cache_config(self) -> dict[str, Any]:
        return {"scorer": "mods_necessity", "version": MODS_VERSION, "template": self.template,
                "max_new_tokens": self.max_new_tokens, "reward": self.reward_model.key(),
                **self.model.key()}  # fmt: skip

    def describe(self) -> str:
        return f"MoDS necessity ({self.model.name})"

    def load_backend(self, device: str | None = None) -> Any:
        from tunesift.data.templates import get_template
        from tunesift.models.causal_lm import CausalLM
        from tunesift.models.reward import RewardModel

        lm = CausalLM.load(self.model, device)
        return lm, get_template(self.template, lm.tokenizer), RewardModel.load(self.reward_model, device)

    def compute(self, units: Sequence[Unit], backend: Any, on_progress: Progress = None) -> list[dict[str, Any]]:
        from tunesift.models.generate import generate

        lm, template, reward = backend
        prompts = [template.prompt(u.payload.instruction, u.payload.input) for u in units]
        answers = [a.strip() for a in generate(lm, prompts, self.max_new_tokens, batch_size=self.batch_size)]
        scores = reward.score([(question(u.payload), a) for u, a in zip(units, answers, strict=True)])
        if on_progress is not None:
            on_progress(len(units))
        return [{"mods_answer": a, "mods_answer_reward": float(s), "skip_reason": None}
                for a, s in zip(answers, scores, strict=True)]  # fmt: skip
