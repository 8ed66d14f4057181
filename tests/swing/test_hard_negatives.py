"""Hard negatives (swing/hard_negatives.py): the table against brute force, the per-batch
sampler's guarantees and the cache beside the SWING cache."""

import os

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from swing_reference import FakeDataset, fake_config

from recbole_dlrrec.data.text_vectors import TextVectorsMissingError, save_text_vectors
from recbole_dlrrec.errors import InputError
from recbole_dlrrec.swing.hard_negatives import HardNegativeSampler, hard_negative_table, hard_negatives_for_dataset


def tiny_side(n=12, connectors=9, dim=5, seed=0):
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    has = np.ones(n, dtype=bool)
    has[0] = False  # padding
    has[5] = False  # an id without text
    vectors[~has] = 0
    graph = sp.csr_matrix((rng.random((n, connectors)) < 0.25).astype(float))
    return vectors, has, graph


def brute_force(vectors, has, graph, pool):
    dense = graph.toarray() > 0
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-30)
    rows = []
    for a in range(len(vectors)):
        if a == 0 or not has[a]:
            rows.append([])
            continue
        allowed = [j for j in range(1, len(vectors)) if j != a and has[j] and not (dense[a] & dense[j]).any()]
        cos = {j: float(unit[a] @ unit[j]) for j in allowed}
        rows.append(sorted(allowed, key=lambda j: (-cos[j], j))[:pool])
    return rows


@pytest.mark.parametrize("pool", [3, 50])
def test_table_is_the_closest_in_text_among_ids_without_shared_interaction(pool):
    vectors, has, graph = tiny_side()
    table = hard_negative_table(vectors, has, graph, pool)
    expected = brute_force(vectors, has, graph, pool)
    dense = graph.toarray() > 0
    for anchor, want in enumerate(expected):
        got = list(table.ids[anchor, : table.counts[anchor]])
        assert got == want, anchor
        assert all(i == -1 for i in table.ids[anchor, table.counts[anchor] :])
        for hard in got:
            assert hard != anchor and not (dense[anchor] & dense[hard]).any()
    assert table.counts[0] == 0 and table.counts[5] == 0
    assert 5 not in table.ids  # no text, never a hard id


def test_chunking_does_not_change_the_table():
    vectors, has, graph = tiny_side(n=20, seed=4)
    whole = hard_negative_table(vectors, has, graph, 6)
    chunked = hard_negative_table(vectors, has, graph, 6, chunk_elements=1)
    np.testing.assert_array_equal(whole.ids, chunked.ids)


def test_ties_go_to_the_lower_id():
    vectors = np.array([[0, 0], [1, 0], [1, 0], [1, 0], [0, 1]], dtype=np.float32)
    graph = sp.csr_matrix((5, 1))
    table = hard_negative_table(vectors, np.array([False, True, True, True, True]), graph, 2)
    assert list(table.ids[1]) == [2, 3] and list(table.ids[3]) == [1, 2]
    assert list(table.ids[4]) == [1, 2]


def test_sampler_draws_distinct_hard_ids_then_tops_up_uniformly():
    # Anchor 1 has 4 hard ids, anchor 2 has 1, anchor 3 none.
    ids = np.array([[-1] * 4, [5, 6, 7, 8], [9, -1, -1, -1], [-1] * 4])
    sampler = HardNegativeSampler(ids, (ids >= 0).sum(1), n_corpus=12, seed=3)
    anchors = torch.tensor([1, 2, 3] * 200)
    positives = torch.tensor([2, 4, 3] * 200)  # anchor 3 has no positive (itself)
    negatives = sampler.sample(anchors, positives, 3)
    assert negatives.shape == (600, 3)
    assert not (negatives == anchors[:, None]).any() and not (negatives == positives[:, None]).any()
    assert ((negatives >= 1) & (negatives < 12)).all()
    first = negatives[anchors == 1]
    assert all(len(set(row.tolist())) == 3 and set(row.tolist()) <= {5, 6, 7, 8} for row in first)
    assert set(first.flatten().tolist()) == {5, 6, 7, 8}
    second = negatives[anchors == 2]
    assert (second[:, 0] == 9).all()  # its only hard id, then uniform draws
    assert len(set(second[:, 1:].flatten().tolist())) > 3


def test_top_up_is_uniform_on_the_corpus_minus_anchor_and_positive():
    sampler = HardNegativeSampler(np.full((6, 1), -1), np.zeros(6), n_corpus=6, seed=0)
    anchors = torch.full((3000,), 2)
    negatives = sampler.sample(anchors, torch.full((3000,), 4), 10).flatten()
    counts = torch.bincount(negatives, minlength=6).tolist()
    assert counts[0] == counts[2] == counts[4] == 0
    for allowed in (1, 3, 5):
        assert abs(counts[allowed] / negatives.numel() - 1 / 3) < 0.01
    # Masked anchors (positive = anchor): only the anchor is excluded.
    negatives = sampler.sample(anchors, anchors, 10).flatten()
    assert set(negatives.tolist()) == {1, 3, 4, 5}


def test_sampler_is_seeded():
    ids = np.array([[-1, -1], [2, 3], [1, -1], [1, 2]])
    draw = lambda: HardNegativeSampler(ids, (ids >= 0).sum(1), 6, seed=5).sample(  # noqa: E731
        torch.tensor([1, 2, 3]), torch.tensor([4, 4, 5]), 4
    )
    assert torch.equal(draw(), draw())


def _fake_with_text(tmp_path, **overrides):
    dataset = FakeDataset()
    dataset.field2id_token = {
        "user_id": np.array(["[PAD]", "u1", "u2", "u3", "u4"]),
        "item_id": np.array(["[PAD]", "i1", "i2", "i3", "i4", "i5"]),
    }
    rng = np.random.default_rng(0)
    save_text_vectors(
        os.path.join(tmp_path, "fake.itemvec.npz"), [f"i{j}" for j in range(1, 6)], rng.normal(size=(5, 4))
    )
    save_text_vectors(
        os.path.join(tmp_path, "fake.uservec.npz"), [f"u{u}" for u in range(1, 5)], rng.normal(size=(4, 4))
    )
    config = fake_config(
        tmp_path, side_data_path=None, item_text_vec="itemvec", user_text_vec="uservec", cl_hard_pool=2, **overrides
    )
    return config, dataset


def test_cache_is_keyed_by_vectors_edges_and_pool(tmp_path, capsys):
    config, dataset = _fake_with_text(tmp_path)
    tables = hard_negatives_for_dataset(config, dataset, ["item", "user"])
    cache_dir = tmp_path / "swing_cache"
    assert sorted(p.name.split("_")[1] for p in cache_dir.glob("hard_*.npz")) == ["item", "user"]
    # Every train row counts as an interaction, label 0 too: item 4 (user 2, label 0) and item 1
    # (user 2) share a user.
    assert 4 not in tables["item"].ids[1] and 1 not in tables["item"].ids[4]
    again = hard_negatives_for_dataset(config, dataset, ["item"])
    assert "loaded hard_item cache" in capsys.readouterr().out
    np.testing.assert_array_equal(again["item"].ids, tables["item"].ids)
    hard_negatives_for_dataset({**config, "cl_hard_pool": 3}, dataset, ["item"])
    assert len(list(cache_dir.glob("hard_item_*.npz"))) == 2
    save_text_vectors(os.path.join(tmp_path, "fake.itemvec.npz"), [f"i{j}" for j in range(1, 6)], np.ones((5, 4)))
    hard_negatives_for_dataset(config, dataset, ["item"])
    assert len(list(cache_dir.glob("hard_item_*.npz"))) == 3


def test_missing_text_vectors_is_an_input_error(tmp_path):
    config, dataset = _fake_with_text(tmp_path)
    config["user_text_vec"] = None
    with pytest.raises(TextVectorsMissingError, match="user_text_vec") as error:
        hard_negatives_for_dataset(config, dataset, ["user"])
    assert isinstance(error.value, InputError)
