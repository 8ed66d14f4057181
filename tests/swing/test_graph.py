"""SWING glue (swing/graph.py): the TRAIN edge matrix and the top-k neighbour tables."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from swing_reference import edges_of, rowwise_topk

from recbole_dlrrec.swing.graph import NeighbourTable, SwingNeighbours, swing_edges_matrix


def test_swing_edges_matrix_all_and_positive():
    users = torch.tensor([1, 1, 2, 3, 3])
    items = torch.tensor([1, 2, 2, 1, 1])
    labels = torch.tensor([1.0, 0.0, 1.0, 1.0, 1.0])
    every = swing_edges_matrix(users, items, labels, 4, 3, edges="all")
    assert edges_of(every) == {(1, 1), (1, 2), (2, 2), (3, 1)}
    assert every.shape == (4, 3) and (every.data == 1).all()
    positive = swing_edges_matrix(users.numpy(), items.numpy(), labels.numpy(), 4, 3, edges="positive")
    assert edges_of(positive) == {(1, 1), (2, 2), (3, 1)}
    with pytest.raises(ValueError, match="swing_edges"):
        swing_edges_matrix(users, items, labels, 4, 3, edges="negative")
    with pytest.raises(ValueError, match="label"):
        swing_edges_matrix(users, items, None, 4, 3, edges="positive")
    with pytest.raises(ValueError, match="item_ids"):
        swing_edges_matrix(users, items, labels, 4, 2, edges="all")


def test_neighbour_table_from_csr():
    csr = sp.csr_matrix(
        np.array([[0.0, 0.5, 0.9, 0.5], [0.0, 0.0, 0.0, 0.0], [0.2, 0.0, 0.0, 0.0], [0.3, 0.3, 0.3, 0.0]])
    )
    table = NeighbourTable.from_csr(csr, k=2)
    assert table.ids.tolist() == [[2, 1], [-1, -1], [0, -1], [0, 1]]
    assert table.scores.tolist() == [[0.9, 0.5], [0, 0], [0.2, 0], [0.3, 0.3]]
    assert table.counts.tolist() == [2, 0, 1, 2]
    assert table.n_nodes == 4 and table.k == 2
    np.testing.assert_array_equal(table.to_csr().toarray(), rowwise_topk(csr.toarray(), 2))
    both = SwingNeighbours.from_csr(csr, csr[:3, :3], k=3)
    assert both.users.ids.shape == (4, 3) and both.items.ids.shape == (3, 3)
    with pytest.raises(ValueError, match="k"):
        NeighbourTable.from_csr(csr, k=0)
