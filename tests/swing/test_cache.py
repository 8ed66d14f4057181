"""SWING cache (swing/cache.py): atomic load-or-compute, the edge fingerprint, the dataset
entry point swing_for_dataset and its config keys."""

import os
import types

import numpy as np
import pytest
import scipy.sparse as sp
import yaml
from swing_reference import FakeDataset, edges_of, fake_config, reference_swing, rowwise_topk

from recbole_dlrrec.swing.cache import (
    cache_file_path,
    edges_fingerprint,
    load_or_compute,
    similarity_from_config,
    swing_for_dataset,
    swing_params_from_config,
)

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


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
    assert f"loaded swing cache {first.path}" in capsys.readouterr().out
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
    logger = types.SimpleNamespace(info=messages.append, warning=lambda m: messages.append("WARN " + m))
    compute = lambda: {"x": np.ones(2)}  # noqa: E731
    load_or_compute(str(tmp_path), {"k": 1}, compute, logger=logger)
    load_or_compute(str(tmp_path), {"k": 1}, compute, logger=logger)
    assert messages[-1].startswith("loaded swing cache ")


def test_edges_fingerprint_ignores_values_and_duplicates():
    a = sp.coo_matrix(([1.0, 2.0, 1.0], ([0, 1, 1], [1, 0, 0])), shape=(2, 2))
    b = sp.csr_matrix(([5.0, 1.0], ([0, 1], [1, 0])), shape=(2, 2))
    assert edges_fingerprint(a) == edges_fingerprint(b)
    moved = sp.csr_matrix(([1.0, 1.0], ([0, 1], [1, 1])), shape=(2, 2))
    assert edges_fingerprint(b) != edges_fingerprint(moved)
    taller = sp.vstack([b, sp.csr_matrix((1, 2))])  # same edges, one more (edgeless) user
    assert edges_fingerprint(b) != edges_fingerprint(taller)


def test_swing_for_dataset_computes_then_loads(tmp_path, capsys):
    dataset = FakeDataset()
    config = fake_config(tmp_path)
    neighbours = swing_for_dataset(config, dataset, progress=False)
    inter = dataset.inter_feat
    keep = inter["label"] == 1
    graph = sp.csr_matrix(
        (np.ones(int(keep.sum())), (inter["user_id"][keep].numpy(), inter["item_id"][keep].numpy())), shape=(5, 6)
    )
    expected_items = rowwise_topk(reference_swing(edges_of(graph), 5, 6), 2)
    expected_users = rowwise_topk(reference_swing({(i, u) for u, i in edges_of(graph)}, 6, 5), 2)
    np.testing.assert_allclose(neighbours.items.to_csr().toarray(), expected_items, rtol=1e-12)
    np.testing.assert_allclose(neighbours.users.to_csr().toarray(), expected_users, rtol=1e-12)
    assert neighbours.items.ids.shape == (6, 2) and neighbours.users.ids.shape == (5, 2)
    assert neighbours.items.counts[0] == 0 and neighbours.users.counts[0] == 0  # padding id 0
    cache_dir = tmp_path / "swing_cache"
    assert len(list(cache_dir.glob("*.npz"))) == 1
    again = swing_for_dataset(config, dataset, progress=False)
    assert "loaded swing cache" in capsys.readouterr().out
    np.testing.assert_array_equal(again.items.ids, neighbours.items.ids)
    # Changing a parameter or the edges gives a new cache entry.
    swing_for_dataset(fake_config(tmp_path, swing_edges="all"), dataset, progress=False)
    assert len(list(cache_dir.glob("*.npz"))) == 2


def test_swing_for_dataset_config_errors(tmp_path):
    dataset = FakeDataset()
    for key, value in [
        ("swing_edges", "liked"),
        ("swing_alpha", -1.0),
        ("swing_topk", None),
        ("swing_max_users_per_item", 0),
        ("swing_max_items_per_user", -2),
    ]:
        with pytest.raises(ValueError, match=key):
            swing_for_dataset(fake_config(tmp_path, **{key: value}), dataset, progress=False)
    config = fake_config(tmp_path)
    del config["LABEL_FIELD"]
    with pytest.raises(ValueError, match="label"):
        swing_for_dataset(config, dataset, progress=False)


def test_absent_keys_take_properties_yaml_values():
    """properties/swing.yaml is the one place of the SWING defaults: a config without the keys
    gets its values, no constant in the code."""
    with open(os.path.join(REPO, "properties", "swing.yaml"), encoding="utf-8") as handle:
        text = handle.read()
    declared = yaml.safe_load(text)
    assert swing_params_from_config({"seed": 0}) == {
        "alpha": declared["swing_alpha"],
        "topk": declared["swing_topk"],
        "max_users_per_item": declared["swing_max_users_per_item"],
        "max_items_per_user": declared["swing_max_items_per_user"],
        "edges": declared["swing_edges"],
        "seed": 0,
    }
    assert similarity_from_config({}) == declared["cl_similarity"]
    for line in text.splitlines():
        if line and not line.startswith("#"):
            assert "# (" in line, f"key line without a '(type) comment': {line}"
