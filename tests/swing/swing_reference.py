"""Shared by the SWING tests: the definition in pure Python (the reference the kernels are
checked against) and a stand-in for RecBole's Config and Dataset."""

import numpy as np
import scipy.sparse as sp
import torch


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
                        result[i, j] += weights[u] * weights[v] / (alpha + len(items_of[u] & items_of[v]))
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


class FakeDataset:
    def __init__(self):
        # users 1..4, items 1..5 (id 0 = padding), label 0 rows are dropped with 'positive'
        self.inter_feat = {
            "user_id": torch.tensor([1, 1, 1, 2, 2, 2, 3, 3, 4, 4, 4]),
            "item_id": torch.tensor([1, 2, 3, 1, 2, 4, 2, 3, 1, 3, 5]),
            "label": torch.tensor([1.0, 1.0, 1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0, 0.0]),
        }
        self.user_num = 5
        self.item_num = 6


def fake_config(tmp_path, **overrides):
    config = {
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "LABEL_FIELD": "label",
        "data_path": str(tmp_path),
        "dataset": "fake",
        "seed": 2020,
        "swing_alpha": 1.0,
        "swing_topk": 2,
        "swing_max_users_per_item": None,
        "swing_edges": "positive",
    }
    config.update(overrides)
    return config
