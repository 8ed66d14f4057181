"""SWING similarities: exactness against a brute-force reference, top-k, cap, glue, cache, CLI."""

import itertools
import os
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp
import torch
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from recbole_dlrrec.swing import similarity as swing
from recbole_dlrrec.swing.similarity import (
    DEFAULTS,
    NeighbourTable,
    SwingNeighbours,
    binarize,
    cache_file_path,
    connector_weights,
    edges_fingerprint,
    item_similarity,
    load_or_compute,
    sample_graph,
    similarity_from_graph,
    swing_edges_matrix,
    swing_for_dataset,
    user_similarity,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


# ---------------------------------------------------------------------------------------------
# Reference implementation: the definition, literally, in pure Python
# ---------------------------------------------------------------------------------------------
def reference_swing(edges, n_users, n_items, alpha=1.0, weights=None):
    """Dense items x items SWING of a set of (user, item) edges, straight from the formula."""
    items_of = [set() for _ in range(n_users)]
    users_of = [set() for _ in range(n_items)]
    for u, i in edges:
        items_of[u].add(i)
        users_of[i].add(u)
    if weights is None:
        weights = [len(s) ** -0.5 if s else 0.0 for s in items_of]
    result = np.zeros((n_items, n_items))
    for i in range(n_items):
        for j in range(n_items):
            if i == j:
                continue
            both = users_of[i] & users_of[j]
            for u in both:
                for v in both:
                    if u != v:
                        result[i, j] += weights[u] * weights[v] / (
                            alpha + len(items_of[u] & items_of[v]))
    return result


def edges_of(matrix):
    coo = sp.coo_matrix(matrix)
    return {(int(u), int(i)) for u, i, x in zip(coo.row, coo.col, coo.data) if x != 0}


def rowwise_topk(dense, k):
    """Keep the k largest of each row, ties to the lower column (zeros are never kept)."""
    out = np.zeros_like(dense)
    for i, row in enumerate(dense):
        order = sorted((c for c in range(row.shape[0]) if row[c] != 0), key=lambda c: (-row[c], c))
        for c in order[:k]:
            out[i, c] = row[c]
    return out


@st.composite
def graphs(draw, max_users=7, max_items=7):
    """A users x items COO matrix with duplicates, explicit zeros and assorted values."""
    n_users = draw(st.integers(0, max_users))
    n_items = draw(st.integers(0, max_items))
    entries = []
    if n_users and n_items:
        entries = draw(st.lists(
            st.tuples(st.integers(0, n_users - 1), st.integers(0, n_items - 1),
                      st.sampled_from([1.0, 1.0, 1.0, 2.5, -1.0, 0.0])),
            max_size=30))
    rows = np.array([e[0] for e in entries], dtype=np.int64)
    cols = np.array([e[1] for e in entries], dtype=np.int64)
    vals = np.array([e[2] for e in entries], dtype=np.float64)
    return sp.coo_matrix((vals, (rows, cols)), shape=(n_users, n_items))


ALPHAS = st.sampled_from([0.0, 0.5, 1.0, 3.0])


# ---------------------------------------------------------------------------------------------
# Exactness and structure
# ---------------------------------------------------------------------------------------------
@PROPERTY_SETTINGS
@given(graphs(), ALPHAS)
def test_item_similarity_equals_bruteforce(matrix, alpha):
    result = item_similarity(matrix, alpha=alpha)
    expected = reference_swing(edges_of(matrix), *matrix.shape, alpha=alpha)
    assert isinstance(result, sp.csr_matrix) and result.dtype == np.float64
    assert result.shape == (matrix.shape[1], matrix.shape[1])
    assert result.has_sorted_indices
    np.testing.assert_allclose(result.toarray(), expected, rtol=1e-12, atol=1e-14)
    assert (result.data > 0).all()  # only true non-zeros are stored
    assert (result.diagonal() == 0).all()
    assert (result != result.T).nnz == 0  # bit-for-bit symmetric


@PROPERTY_SETTINGS
@given(graphs(), ALPHAS)
def test_user_similarity_is_item_similarity_of_transpose(matrix, alpha):
    users = user_similarity(matrix, alpha=alpha)
    assert (users != item_similarity(matrix.T, alpha=alpha)).nnz == 0
    transposed = {(i, u) for u, i in edges_of(matrix)}
    expected = reference_swing(transposed, matrix.shape[1], matrix.shape[0], alpha=alpha)
    np.testing.assert_allclose(users.toarray(), expected, rtol=1e-12, atol=1e-14)


@PROPERTY_SETTINGS
@given(graphs(), st.integers(1, 4))
def test_topk_is_rowwise_topk_of_exact(matrix, k):
    full = item_similarity(matrix).toarray()
    result = item_similarity(matrix, topk=k)
    np.testing.assert_array_equal(result.toarray(), rowwise_topk(full, k))
    assert (np.diff(result.indptr) <= k).all()


@PROPERTY_SETTINGS
@given(graphs(max_users=9, max_items=6), st.integers(0, 4), st.sampled_from([None, 2]))
def test_row_methods_agree_bit_for_bit(matrix, limit, topk):
    # Rows with more users than the limit use the marking method, others the common lists.
    default = item_similarity(matrix, topk=topk)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(swing, "_DENSE_PAIR_LIMIT", limit)
        mixed = item_similarity(matrix, topk=topk)
    assert (mixed != default).nnz == 0
    if topk is None:
        assert (mixed != mixed.T).nnz == 0


def test_topk_ties_go_to_lower_column():
    # Three users who all bought the same five items: every off-diagonal score is equal.
    matrix = sp.csr_matrix(np.ones((3, 5)))
    result = item_similarity(matrix, topk=2).toarray()
    nonzero_cols = [list(np.flatnonzero(row)) for row in result]
    assert nonzero_cols == [[1, 2], [0, 2], [0, 1], [0, 1], [0, 1]]


@PROPERTY_SETTINGS
@given(graphs(max_users=9, max_items=5), st.integers(1, 4), st.integers(0, 3))
def test_cap_is_exact_swing_on_the_sampled_graph(matrix, cap, seed):
    full = binarize(matrix)
    sampled = sample_graph(matrix, cap, seed)
    degree = np.diff(full.tocsc().indptr)
    sampled_degree = np.diff(sampled.tocsc().indptr)
    assert (sampled_degree == np.minimum(degree, cap)).all()  # at most m users per item
    assert edges_of(sampled) <= edges_of(full)
    result = item_similarity(matrix, max_users_per_item=cap, seed=seed)
    expected = reference_swing(edges_of(sampled), *matrix.shape,
                               weights=connector_weights(full))  # weights: full degree
    np.testing.assert_allclose(result.toarray(), expected, rtol=1e-12, atol=1e-14)
    assert (result != result.T).nnz == 0


CAPS = st.one_of(st.none(), st.integers(1, 4))


@PROPERTY_SETTINGS
@given(graphs(max_users=8, max_items=8), CAPS, CAPS, st.integers(0, 3))
def test_both_caps_on_both_sides(matrix, item_cap, user_cap, seed):
    full = binarize(matrix)
    sampled = sample_graph(matrix, item_cap, seed, max_items_per_user=user_cap)
    assert edges_of(sampled) <= edges_of(full)
    if item_cap is not None:
        assert (np.diff(sampled.tocsc().indptr) <= item_cap).all()
    if user_cap is not None:
        assert (np.diff(sampled.indptr) <= user_cap).all()
    caps = dict(max_users_per_item=item_cap, max_items_per_user=user_cap, seed=seed)
    items = item_similarity(matrix, **caps)
    users = user_similarity(matrix, **caps)
    n_users, n_items = matrix.shape
    expected_items = reference_swing(edges_of(sampled), n_users, n_items,
                                     weights=connector_weights(full))
    expected_users = reference_swing({(i, u) for u, i in edges_of(sampled)}, n_items, n_users,
                                     weights=connector_weights(full.T))
    np.testing.assert_allclose(items.toarray(), expected_items, rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(users.toarray(), expected_users, rtol=1e-12, atol=1e-14)


@PROPERTY_SETTINGS
@given(graphs())
def test_cap_not_reached_is_exact(matrix):
    degree = np.diff(binarize(matrix).tocsc().indptr)
    cap = max(int(degree.max()) if degree.size else 1, 1)
    capped = item_similarity(matrix, max_users_per_item=cap, seed=5)
    assert (capped != item_similarity(matrix)).nnz == 0


def test_cap_sampling_is_seeded_and_uniform():
    rng = np.random.default_rng(0)
    matrix = sp.csr_matrix((rng.random((200, 3)) < 0.9).astype(float))
    first = sample_graph(matrix, 10, seed=1)
    assert (first != sample_graph(matrix, 10, seed=1)).nnz == 0
    assert (first != sample_graph(matrix, 10, seed=2)).nnz > 0
    # Across seeds, every user of item 0 is kept about equally often (10 of ~180 each time).
    users = binarize(matrix).tocsc()[:, 0].indices
    counts = np.zeros(matrix.shape[0])
    for seed in range(300):
        counts += sample_graph(matrix, 10, seed=seed).tocsc()[:, 0].toarray().ravel()
    expected = 300 * 10 / users.size
    assert np.abs(counts[users] - expected).max() < 5 * np.sqrt(expected)


def test_duplicates_zeros_and_values_define_edges():
    rows = np.array([0, 0, 1, 1, 2, 2, 2])
    cols = np.array([0, 0, 0, 1, 1, 1, 2])
    vals = np.array([1.0, -1.0, 3.0, 0.0, 1.0, 1.0, 0.0])  # (0,0) twice, cancelling values
    graph = binarize(sp.coo_matrix((vals, (rows, cols)), shape=(3, 3)))
    assert edges_of(graph) == {(0, 0), (1, 0), (2, 1)}
    assert (graph.data == 1).all()


def test_empty_inputs_give_empty_rows():
    for shape in [(0, 0), (4, 0), (0, 4), (3, 5)]:
        result = item_similarity(sp.csr_matrix(shape))
        assert result.shape == (shape[1], shape[1]) and result.nnz == 0
    zeros = sp.csr_matrix((np.zeros(3), ([0, 1, 2], [0, 1, 1])), shape=(3, 3))
    assert item_similarity(zeros).nnz == 0
    single = sp.csr_matrix(([1.0, 1.0], ([0, 0], [0, 1])), shape=(5, 6))  # one user only
    assert item_similarity(single, topk=3).nnz == 0
    assert user_similarity(single).shape == (5, 5)


def test_accepts_sparse_arrays_and_other_formats():
    dense = np.array([[1, 1, 0], [1, 1, 1], [0, 1, 1]], dtype=float)
    expected = item_similarity(sp.csr_matrix(dense)).toarray()
    for matrix in (sp.csr_array(dense), sp.csc_matrix(dense), sp.lil_matrix(dense),
                   sp.coo_array(dense)):
        np.testing.assert_array_equal(item_similarity(matrix).toarray(), expected)


@pytest.mark.parametrize("kwargs, match", [
    ({"alpha": -0.1}, "alpha"),
    ({"alpha": float("nan")}, "alpha"),
    ({"alpha": True}, "alpha"),
    ({"alpha": "1"}, "alpha"),
    ({"topk": 0}, "topk"),
    ({"topk": -3}, "topk"),
    ({"topk": 2.5}, "topk"),
    ({"topk": True}, "topk"),
    ({"topk": "5"}, "topk"),
    ({"max_users_per_item": 0}, "max_users_per_item"),
    ({"max_users_per_item": False}, "max_users_per_item"),
    ({"max_items_per_user": 0}, "max_items_per_user"),
    ({"max_items_per_user": 1.0}, "max_items_per_user"),
    ({"seed": -1}, "seed"),
])
def test_bad_parameters_raise(kwargs, match):
    matrix = sp.csr_matrix(np.ones((2, 2)))
    with pytest.raises(ValueError, match=match):
        item_similarity(matrix, **kwargs)
    with pytest.raises(ValueError, match=match):
        user_similarity(matrix, **kwargs)


@pytest.mark.parametrize("bad", [np.ones((3, 3)), [[1, 0], [0, 1]], torch.ones(2, 2), None])
def test_non_sparse_input_raises(bad):
    with pytest.raises(ValueError, match="scipy.sparse"):
        item_similarity(bad)


def test_nan_values_raise():
    with pytest.raises(ValueError, match="NaN"):
        item_similarity(sp.csr_matrix(np.array([[np.nan, 1.0], [1.0, 1.0]])))


def test_similarity_from_graph_checks_weights():
    graph = sp.csr_matrix(np.ones((2, 2)))
    with pytest.raises(ValueError, match="weights"):
        similarity_from_graph(graph, np.ones(3))
    with pytest.raises(ValueError, match="weights"):
        similarity_from_graph(graph, np.array([1.0, 0.0]))


def test_larger_random_graph_matches_reference_and_progress_batches():
    # Enough rows to use several tasks and the batched (progress) path; results identical.
    rng = np.random.default_rng(3)
    n_users, n_items = 60, 40
    popularity = 1.0 / np.arange(1, n_items + 1)
    rows, cols = [], []
    for u in range(n_users):
        k = 1 + rng.poisson(4)
        chosen = rng.choice(n_items, size=min(k, n_items), replace=False,
                            p=popularity / popularity.sum())
        rows += [u] * len(chosen)
        cols += list(chosen)
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    quiet = item_similarity(matrix, alpha=0.7)
    batched = item_similarity(matrix, alpha=0.7, progress=True)
    assert (quiet != batched).nnz == 0
    expected = reference_swing(edges_of(matrix), n_users, n_items, alpha=0.7)
    np.testing.assert_allclose(quiet.toarray(), expected, rtol=1e-12, atol=1e-14)


# ---------------------------------------------------------------------------------------------
# Glue: edges, neighbour tables
# ---------------------------------------------------------------------------------------------
def test_swing_edges_matrix_all_and_positive():
    users = torch.tensor([1, 1, 2, 3, 3])
    items = torch.tensor([1, 2, 2, 1, 1])
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0])
    every = swing_edges_matrix(users, items, labels, 4, 3, edges="all")
    assert edges_of(every) == {(1, 1), (1, 2), (2, 2), (3, 1)}
    assert every.shape == (4, 3) and (every.data == 1).all()
    positive = swing_edges_matrix(users.numpy(), items.numpy(), labels.numpy(), 4, 3,
                                  edges="positive")
    assert edges_of(positive) == {(1, 1), (2, 2), (3, 1)}
    with pytest.raises(ValueError, match="swing_edges"):
        swing_edges_matrix(users, items, labels, 4, 3, edges="negative")
    with pytest.raises(ValueError, match="label"):
        swing_edges_matrix(users, items, None, 4, 3, edges="positive")
    with pytest.raises(ValueError, match="item_ids"):
        swing_edges_matrix(users, items, labels, 4, 2, edges="all")


def test_neighbour_table_from_csr():
    csr = sp.csr_matrix(np.array([
        [0.0, 0.5, 0.9, 0.5],
        [0.0, 0.0, 0.0, 0.0],
        [0.2, 0.0, 0.0, 0.0],
        [0.3, 0.3, 0.3, 0.0],
    ]))
    table = NeighbourTable.from_csr(csr, k=2)
    assert table.ids.tolist() == [[2, 1], [-1, -1], [0, -1], [0, 1]]
    assert table.scores.tolist() == [[0.9, 0.5], [0, 0], [0.2, 0], [0.3, 0.3]]
    assert table.counts.tolist() == [2, 0, 1, 2]
    assert table.n_nodes == 4 and table.k == 2
    np.testing.assert_array_equal(table.to_csr().toarray(),
                                  rowwise_topk(csr.toarray(), 2))
    both = SwingNeighbours.from_csr(csr, csr[:3, :3], k=3)
    assert both.users.ids.shape == (4, 3) and both.items.ids.shape == (3, 3)
    with pytest.raises(ValueError, match="k"):
        NeighbourTable.from_csr(csr, k=0)


# ---------------------------------------------------------------------------------------------
# Cache
# ---------------------------------------------------------------------------------------------
def test_load_or_compute_caches_atomically(tmp_path, capsys):
    calls = []

    def compute():
        calls.append(1)
        return {"a": np.arange(5), "b": np.eye(2)}

    params = {"dataset": "toy", "alpha": 1.0, "topk": np.int64(3)}
    first = load_or_compute(str(tmp_path), params, compute, fingerprint="abc")
    assert not first.loaded and calls == [1] and os.path.isfile(first.path)
    assert os.listdir(tmp_path) == [os.path.basename(first.path)]  # no temp file left
    second = load_or_compute(str(tmp_path), params, compute, fingerprint="abc")
    assert second.loaded and calls == [1] and second.path == first.path
    assert f"loaded SWING cache {first.path}" in capsys.readouterr().out
    np.testing.assert_array_equal(second.arrays["b"], np.eye(2))
    # Other parameters or other edges: another file.
    assert cache_file_path(str(tmp_path), {**params, "alpha": 2.0}, "abc") != first.path
    assert cache_file_path(str(tmp_path), params, "abd") != first.path
    # A corrupt file is recomputed with a warning, and replaced.
    with open(first.path, "wb") as handle:
        handle.write(b"not an npz")
    with pytest.warns(RuntimeWarning, match="unreadable"):
        third = load_or_compute(str(tmp_path), params, compute, fingerprint="abc")
    assert not third.loaded and calls == [1, 1]
    assert load_or_compute(str(tmp_path), params, compute, fingerprint="abc").loaded


def test_load_or_compute_uses_logger(tmp_path):
    messages = []
    logger = types.SimpleNamespace(info=messages.append,
                                   warning=lambda m: messages.append("WARN " + m))
    compute = lambda: {"x": np.ones(2)}  # noqa: E731
    load_or_compute(str(tmp_path), {"k": 1}, compute, logger=logger)
    load_or_compute(str(tmp_path), {"k": 1}, compute, logger=logger)
    assert messages[-1].startswith("loaded SWING cache ")


def test_edges_fingerprint_ignores_values_and_duplicates():
    a = sp.coo_matrix(([1.0, 2.0, 1.0], ([0, 1, 1], [1, 0, 0])), shape=(2, 2))
    b = sp.csr_matrix(([5.0, 1.0], ([0, 1], [1, 0])), shape=(2, 2))
    assert edges_fingerprint(a) == edges_fingerprint(b)
    moved = sp.csr_matrix(([1.0, 1.0], ([0, 1], [1, 1])), shape=(2, 2))
    assert edges_fingerprint(b) != edges_fingerprint(moved)
    taller = sp.vstack([b, sp.csr_matrix((1, 2))])  # same edges, one more (edgeless) user
    assert edges_fingerprint(b) != edges_fingerprint(taller)


# ---------------------------------------------------------------------------------------------
# Dataset glue and CLI (with a stand-in for RecBole's Config / Dataset)
# ---------------------------------------------------------------------------------------------
class FakeDataset:
    def __init__(self):
        # users 1..4, items 1..5 (id 0 = padding), label 0 rows are dropped with 'positive'
        self.inter_feat = {
            "user_id": torch.tensor([1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4]),
            "item_id": torch.tensor([1, 2, 3, 1, 2, 4, 2, 3, 1, 3, 5]),
            "label": torch.tensor([1., 1., 1., 1., 1., 0., 1., 1., 1., 1., 0.]),
        }
        self.user_num = 5
        self.item_num = 6


def fake_config(tmp_path, **overrides):
    config = {"USER_ID_FIELD": "user_id", "ITEM_ID_FIELD": "item_id", "LABEL_FIELD": "label",
              "data_path": str(tmp_path), "dataset": "fake", "seed": 2020,
              "swing_alpha": 1.0, "swing_topk": 2, "swing_max_users_per_item": None,
              "swing_edges": "positive"}
    config.update(overrides)
    return config


def test_swing_for_dataset_computes_then_loads(tmp_path, capsys):
    dataset = FakeDataset()
    config = fake_config(tmp_path)
    neighbours = swing_for_dataset(config, dataset, progress=False)
    inter = dataset.inter_feat
    keep = inter["label"] == 1
    graph = sp.csr_matrix((np.ones(int(keep.sum())), (inter["user_id"][keep].numpy(),
                                                      inter["item_id"][keep].numpy())),
                          shape=(5, 6))
    expected_items = rowwise_topk(reference_swing(edges_of(graph), 5, 6), 2)
    expected_users = rowwise_topk(reference_swing({(i, u) for u, i in edges_of(graph)}, 6, 5), 2)
    np.testing.assert_allclose(neighbours.items.to_csr().toarray(), expected_items, rtol=1e-12)
    np.testing.assert_allclose(neighbours.users.to_csr().toarray(), expected_users, rtol=1e-12)
    assert neighbours.items.ids.shape == (6, 2) and neighbours.users.ids.shape == (5, 2)
    assert neighbours.items.counts[0] == 0 and neighbours.users.counts[0] == 0  # padding id 0
    cache_dir = tmp_path / "swing_cache"
    assert len(list(cache_dir.glob("*.npz"))) == 1
    again = swing_for_dataset(config, dataset, progress=False)
    assert "loaded SWING cache" in capsys.readouterr().out
    np.testing.assert_array_equal(again.items.ids, neighbours.items.ids)
    # Changing a parameter or the edges gives a new cache entry.
    swing_for_dataset(fake_config(tmp_path, swing_edges="all"), dataset, progress=False)
    assert len(list(cache_dir.glob("*.npz"))) == 2


def test_swing_for_dataset_config_errors(tmp_path):
    dataset = FakeDataset()
    for key, value in [("swing_edges", "liked"), ("swing_alpha", -1.0), ("swing_topk", None),
                       ("swing_max_users_per_item", 0), ("swing_max_items_per_user", -2)]:
        with pytest.raises(ValueError, match=key):
            swing_for_dataset(fake_config(tmp_path, **{key: value}), dataset, progress=False)
    config = fake_config(tmp_path)
    del config["LABEL_FIELD"]
    with pytest.raises(ValueError, match="label"):
        swing_for_dataset(config, dataset, progress=False)


def test_defaults_match_properties_yaml():
    with open(os.path.join(REPO, "properties", "swing.yaml"), encoding="utf-8") as handle:
        text = handle.read()
    assert yaml.safe_load(text) == DEFAULTS
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert "# (" in line, f"key line without a '(type) comment': {line}"


def test_cli_builds_then_loads_and_plots(tmp_path, monkeypatch, capsys):
    dataset = FakeDataset()
    seen = {}

    def build_config(model, dataset_name, config_file_list=None, config_dict=None):
        seen.update(model=model, files=config_file_list, overrides=config_dict)
        return fake_config(tmp_path, dataset=dataset_name, **(config_dict or {}))

    def load_splits(config):
        return None, types.SimpleNamespace(dataset=dataset), None, None

    fake_module = types.ModuleType("recbole_dlrrec.runtime.quick_start")
    fake_module.build_config = build_config
    fake_module.load_splits = load_splits
    monkeypatch.setitem(sys.modules, "recbole_dlrrec.runtime.quick_start", fake_module)

    first = swing.main(["--dataset=fake", "--topk", "3", "--config_files", "a.yaml b.yaml"])
    out = capsys.readouterr().out
    assert seen == {"model": "DLRREC", "files": ["a.yaml", "b.yaml"],
                    "overrides": {"swing_topk": 3}}
    assert "computed" in out and "items:" in out and "users:" in out
    assert os.path.isfile(first["histogram"]) and first["histogram"].endswith(".png")
    assert os.path.dirname(first["histogram"]) == os.path.dirname(first["cache"])
    assert first["summary"]["items"]["with_neighbours"] == 3  # items 1, 2, 3
    second = swing.main(["--dataset=fake", "--topk", "3"])
    assert second["loaded"] and "loaded SWING cache" in capsys.readouterr().out
