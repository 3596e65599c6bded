"""A reward model: any Hugging Face sequence-classification checkpoint with one output (e.g. OpenAssistant's
reward-model-deberta-v3-large-v2), scoring (question, answer) pairs as MoDS does (docs/methods.md §9).

The pair is encoded as the tokenizer's text pair (``tokenizer(question, answer)``: ``[CLS] q [SEP] a [SEP]`` for
DeBERTa/BERT) and the score is the single logit. A checkpoint that is not a sequence classifier, or has more
than one label, is refused before any work.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from tunesift.errors import ConfigError
from tunesift.models.registry import ResolvedModel


def check_reward_checkpoint(model: ResolvedModel, option: str = "reward-model") -> None:
    """The checkpoint's config must declare a sequence-classification head with one label."""
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(model.path)
    architectures = config.architectures or []
    if not any(a.endswith("ForSequenceClassification") for a in architectures):
        raise ConfigError(option, f"{model.name} is not a sequence classifier (architectures: {architectures}); "
                          "give a reward model such as OpenAssistant/reward-model-deberta-v3-large-v2")  # fmt: skip
    if config.num_labels != 1:
        raise ConfigError(option, f"{model.name} has {config.num_labels} labels; a reward model has one score")


@dataclass
class RewardModel:
    """A loaded reward model on one device."""

    model: Any
    tokenizer: Any
    device: str
    max_length: int = 512

    @classmethod
    def load(cls, resolved: ResolvedModel, device: str | None = None) -> RewardModel:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        from tunesift.models.precision import pick_device, torch_dtype

        check_reward_checkpoint(resolved)
        where = pick_device(device)
        from tunesift.models.quiet import loading_quietly

        with loading_quietly():
            model = AutoModelForSequenceClassification.from_pretrained(resolved.path, dtype=torch_dtype(resolved.dtype))
        tokenizer = AutoTokenizer.from_pretrained(resolved.path)
        limit = min(getattr(tokenizer, "model_max_length", 512) or 512, 4096)
        with torch.inference_mode():
            return cls(model.to(where).eval(), tokenizer, where, limit)

    def score(self, pairs: Sequence[tuple[str, str]], batch_size: int = 16) -> np.ndarray:
        """The reward of each (question, answer) pair (texts longer than the model takes are truncated)."""
        import torch

        out = np.empty(len(pairs), dtype=np.float64)
        for begin in range(0, len(pairs), batch_size):
            chunk = pairs[begin : begin + batch_size]
            encoded = self.tokenizer([q for q, _ in chunk], [a for _, a in chunk], return_tensors="pt", padding=True,
                                     truncation=True, max_length=self.max_length).to(self.device)  # fmt: skip
            with torch.inference_mode():
                logits = self.model(**encoded).logits
            out[begin : begin + len(chunk)] = logits[:, 0].double().cpu().numpy()
        return out


def reward_ref(reward_model: str | ResolvedModel | None, executor: Any, dtype: str | None = None) -> ResolvedModel:
    """The reward checkpoint, resolved, checked to be a one-label sequence classifier, in its dtype."""
    from tunesift.models.registry import resolve_model

    if reward_model is None:
        raise ConfigError("reward-model", "MoDS needs a reward model: a sequence-classification checkpoint (a folder "
                          "or hub id, e.g. OpenAssistant/reward-model-deberta-v3-large-v2)")  # fmt: skip
    if isinstance(reward_model, ResolvedModel):
        return reward_model
    resolved = resolve_model(reward_model, option="reward-model")
    check_reward_checkpoint(resolved)
    return resolved.on(executor.target_device(), dtype or "auto")
