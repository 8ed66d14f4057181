"""Co-occurrence similarities for the positives (swing/similarity.py) and cl_similarity in the
neighbour cache (swing/cache.py)."""

import os

import numpy as np
import pytest
import scipy.sparse as sp
from swing_reference import FakeDataset, fake_config, rowwise_topk

from recbole_dlrrec.config.keys import ConfigKeyError
from recbole_dlrrec.errors import InputError
from recbole_dlrrec.swing.cache import swing_for_dataset, swing_neighbours_and_cache
from recbole_dlrrec.swing.graph import NeighbourTable, sample_graph
from recbole_dlrrec.swing.similarity import cooccurrence_similarity, similarity_tables


def dense_similarity(graph, kind):
    """Rows x rows similarity of a dense 0/1 nodes x connectors array, straight from the formula."""
    graph = np.asarray(graph, dtype=np.float64)
    n = graph.shape[0]
    degree = graph.sum(1)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            co = float((graph[i] * graph[j]).sum())
            if i == j or co == 0:
                continue
            out[i, j] = (
                co / np.sqrt(degree[i] * degree[j]) if kind == "itemcf_cosine" else co / (degree[i] + degree[j] - co)
            )
    return out


def random_graph(n_users=30, n_items=20, density=0.2, seed=0):
    rng = np.random.default_rng(seed)
    return sp.csr_matrix((rng.random((n_users, n_items)) < density).astype(float))


@pytest.mark.parametrize("kind", ["itemcf_cosine", "jaccard"])
def test_tables_match_brute_force_on_both_sides(kind):
    graph = random_graph()
    k = 4
    users, items = similarity_tables(graph, kind, k)
    dense = graph.toarray()
    for got, nodes in ((items, dense.T), (users, dense)):
        expected = dense_similarity(nodes, kind)
        np.testing.assert_allclose(got.toarray(), rowwise_topk(expected, k), rtol=1e-12, atol=0)
        table = NeighbourTable.from_csr(got, k)
        for row in range(expected.shape[0]):  # best first, ties to the lower id
            order = sorted(np.nonzero(expected[row])[0], key=lambda c: (-expected[row, c], c))[:k]
            assert list(table.ids[row, : table.counts[row]]) == order


def test_chunking_does_not_change_the_result():
    graph = random_graph(40, 25, 0.3, seed=3)
    whole = cooccurrence_similarity(graph, "jaccard", 5)
    one_row_at_a_time = cooccurrence_similarity(graph, "jaccard", 5, chunk_work=1)
    assert (whole != one_row_at_a_time).nnz == 0


def test_ties_go_to_the_lower_id_and_the_node_itself_is_never_kept():
    # Item 0's users each hold one other item (1, 2 or 3) of equal degree: a three-way tie.
    graph = sp.csr_matrix(np.array([[1, 1, 0, 0], [1, 0, 1, 0], [1, 0, 0, 1]], dtype=float))
    table = NeighbourTable.from_csr(cooccurrence_similarity(graph.T.tocsr(), "itemcf_cosine", 2), 2)
    assert list(table.ids[0]) == [1, 2]
    np.testing.assert_allclose(table.scores[0], [1 / np.sqrt(3)] * 2)
    assert list(table.ids[1]) == [0, -1]  # item 1 shares a user with item 0 only


def test_caps_sample_the_graph_as_swing_does():
    graph = random_graph(30, 10, 0.6, seed=1)
    users, items = similarity_tables(graph, "itemcf_cosine", 3, max_users_per_item=5, max_items_per_user=4, seed=11)
    sampled = sample_graph(graph, 5, 11, 4).toarray()
    np.testing.assert_allclose(items.toarray(), rowwise_topk(dense_similarity(sampled.T, "itemcf_cosine"), 3))
    np.testing.assert_allclose(users.toarray(), rowwise_topk(dense_similarity(sampled, "itemcf_cosine"), 3))


def test_similarity_is_in_the_cache_key_and_swing_keeps_its_file_names(tmp_path, capsys):
    dataset = FakeDataset()
    cache_dir = tmp_path / "swing_cache"
    # The file names SWING had before cl_similarity existed: an existing cache stays valid.
    _, swing = swing_neighbours_and_cache(fake_config(tmp_path), dataset, progress=False)
    assert os.path.basename(swing.path) == "swing_388c8350bfa9d59f.npz"
    _, other = swing_neighbours_and_cache(
        fake_config(tmp_path, swing_topk=3, swing_edges="all", seed=7), dataset, progress=False
    )
    assert os.path.basename(other.path) == "swing_102d14440344987b.npz"

    _, cosine = swing_neighbours_and_cache(
        fake_config(tmp_path, cl_similarity="itemcf_cosine"), dataset, progress=False
    )
    assert not cosine.loaded and os.path.basename(cosine.path).startswith("itemcf_cosine_")
    _, again = swing_neighbours_and_cache(fake_config(tmp_path, cl_similarity="itemcf_cosine"), dataset, progress=False)
    assert again.loaded and again.path == cosine.path
    _, jaccard = swing_neighbours_and_cache(fake_config(tmp_path, cl_similarity="jaccard"), dataset, progress=False)
    assert not jaccard.loaded and os.path.basename(jaccard.path).startswith("jaccard_")
    assert len(list(cache_dir.glob("*.npz"))) == 4
    _, swing_again = swing_neighbours_and_cache(fake_config(tmp_path), dataset, progress=False)
    assert swing_again.loaded and swing_again.path == swing.path


def test_swing_for_dataset_returns_the_configured_similarity(tmp_path):
    dataset = FakeDataset()
    neighbours = swing_for_dataset(
        fake_config(tmp_path, cl_similarity="jaccard", swing_topk=3), dataset, progress=False
    )
    inter = dataset.inter_feat
    keep = (inter["label"] == 1).numpy()
    graph = np.zeros((5, 6))
    graph[inter["user_id"].numpy()[keep], inter["item_id"].numpy()[keep]] = 1
    np.testing.assert_allclose(
        neighbours.items.to_csr().toarray(), rowwise_topk(dense_similarity(graph.T, "jaccard"), 3)
    )
    np.testing.assert_allclose(neighbours.users.to_csr().toarray(), rowwise_topk(dense_similarity(graph, "jaccard"), 3))


def test_unknown_similarity_is_an_input_error_naming_the_key(tmp_path):
    with pytest.raises(ConfigKeyError, match="cl_similarity") as error:
        swing_for_dataset(fake_config(tmp_path, cl_similarity="cosine"), FakeDataset(), progress=False)
    assert isinstance(error.value, InputError)
