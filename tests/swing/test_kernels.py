"""SWING similarities (swing/kernels.py, on graphs from swing/graph.py): exactness against a
brute-force reference, top-k, caps, row methods, bad input."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from swing_reference import edges_of, reference_swing, rowwise_topk

from recbole_dlrrec.swing import kernels
from recbole_dlrrec.swing.graph import binarize, connector_weights, sample_graph
from recbole_dlrrec.swing.kernels import item_similarity, similarity_from_graph, user_similarity

PROPERTY_SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def graphs(draw, max_users=7, max_items=7):
    """A users x items COO matrix with duplicates, explicit zeros and assorted values."""
    n_users = draw(st.integers(0, max_users))
    n_items = draw(st.integers(0, max_items))
    entries = []
    if n_users and n_items:
        entries = draw(
            st.lists(
                st.tuples(
                    st.integers(0, n_users - 1),
                    st.integers(0, n_items - 1),
                    st.sampled_from([1.0, 1.0, 1.0, 2.5, -1.0, 0.0]),
                ),
                max_size=30,
            )
        )
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


@pytest.mark.slow
@PROPERTY_SETTINGS
@given(graphs(max_users=9, max_items=6), st.integers(0, 4), st.sampled_from([None, 2]))
def test_row_methods_agree_bit_for_bit(matrix, limit, topk):
    # Rows with more users than the limit use the marking method, others the common lists.
    default = item_similarity(matrix, topk=topk)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(kernels, "_DENSE_PAIR_LIMIT", limit)
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
    expected = reference_swing(
        edges_of(sampled), *matrix.shape, weights=connector_weights(full)
    )  # weights: full degree
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
    expected_items = reference_swing(edges_of(sampled), n_users, n_items, weights=connector_weights(full))
    expected_users = reference_swing(
        {(i, u) for u, i in edges_of(sampled)}, n_items, n_users, weights=connector_weights(full.T)
    )
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
    for matrix in (sp.csr_array(dense), sp.csc_matrix(dense), sp.lil_matrix(dense), sp.coo_array(dense)):
        np.testing.assert_array_equal(item_similarity(matrix).toarray(), expected)


@pytest.mark.parametrize(
    "kwargs, match",
    [
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
    ],
)
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
        chosen = rng.choice(n_items, size=min(k, n_items), replace=False, p=popularity / popularity.sum())
        rows += [u] * len(chosen)
        cols += list(chosen)
    matrix = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_users, n_items))
    quiet = item_similarity(matrix, alpha=0.7)
    batched = item_similarity(matrix, alpha=0.7, progress=True)
    assert (quiet != batched).nnz == 0
    expected = reference_swing(edges_of(matrix), n_users, n_items, alpha=0.7)
    np.testing.assert_allclose(quiet.toarray(), expected, rtol=1e-12, atol=1e-14)
