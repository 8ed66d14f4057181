"""nn/text.py: ReductionTower and TextTower shapes, the frozen PCA, bf16 storage, gradients."""

import pytest
import torch

from recbole_dlrrec.nn.text import ReductionTower, TextTower

T, R, D = 12, 4, 6


def vectors(n=10, seed=0):
    table = torch.randn(n, T, generator=torch.Generator().manual_seed(seed))
    table[0] = 0.0  # row 0: padding
    return table


@pytest.mark.parametrize("kind", ["mlp", "linear", "pca"])
def test_reduction_tower_shapes(kind):
    tower = ReductionTower(kind, T, R, hidden=[8], dropout=0.1, norm="layer")
    assert tower(torch.randn(5, T)).shape == (5, R)


def test_reduction_tower_refuses_unknown_kind():
    with pytest.raises(ValueError, match="reduction must be one of"):
        ReductionTower("none", T, R)


def test_pca_tower_is_frozen_and_fits_the_principal_directions():
    tower = ReductionTower("pca", T, R)
    assert list(tower.parameters()) == []  # nothing for the optimizer: frozen
    x = torch.randn(200, T, generator=torch.Generator().manual_seed(1)) * torch.linspace(5, 0.1, T)
    share = tower.fit_pca(x)
    components = tower.pca_components
    torch.testing.assert_close(components @ components.T, torch.eye(R), atol=1e-5, rtol=0)
    centred = (x - x.mean(0)).double()
    total = float(centred.pow(2).sum())
    projected = tower(x).double()
    assert share == pytest.approx(float(projected.pow(2).sum()) / total, rel=1e-4)
    assert 0.5 < share < 1.0  # the first R of T decreasing-scale axes hold most variance


def test_text_tower_maps_ids_to_d_and_repeats_equal_ids():
    tower = TextTower(vectors(), "mlp", R, D, hidden=[8], norm="layer").eval()
    ids = torch.tensor([3, 1, 3, 0, 9])
    out = tower(ids)
    assert out.shape == (5, D)
    assert torch.equal(out[0], out[2])
    # Running the tower once per distinct id gives what running it on every row gives.
    direct = tower.adapter(tower.tower(tower.vectors[ids]))
    torch.testing.assert_close(out, direct)


def test_text_tower_adapter_only_when_sizes_differ():
    assert isinstance(TextTower(vectors(), "linear", R, R).adapter, torch.nn.Identity)
    assert isinstance(TextTower(vectors(), "linear", R, D).adapter, torch.nn.Linear)


def test_text_tower_table_is_data_not_state_and_can_be_bf16():
    tower = TextTower(vectors(), "linear", R, D, vector_dtype=torch.bfloat16)
    assert tower.vectors.dtype == torch.bfloat16
    assert "vectors" not in tower.state_dict()
    # Outside autocast the bf16 rows are read back as float32.
    assert tower(torch.tensor([1, 2])).dtype == torch.float32


def test_text_tower_fit_pca_uses_the_given_ids_only():
    table = vectors(n=30)
    tower = TextTower(table, "pca", R, D)
    ids = torch.arange(1, 16)
    tower.fit_pca(ids)
    torch.testing.assert_close(tower.tower.pca_mean, table[ids].mean(0))


def test_gradient_reaches_the_tower_from_a_loss_on_its_output():
    tower = TextTower(vectors(), "mlp", R, D, hidden=[8])
    tower(torch.tensor([1, 2, 3])).pow(2).sum().backward()
    assert all(p.grad is not None and float(p.grad.abs().sum()) > 0 for p in tower.tower.parameters())


# -- reduction_adapter and text_dropout --------------------------------------------------------
def test_adapter_none_needs_r_equal_d():
    with pytest.raises(ValueError, match="reduction_dim == dim"):
        TextTower(vectors(), "linear", R, D, adapter="none")
    with pytest.raises(ValueError, match="adapter must be one of"):
        TextTower(vectors(), "linear", R, R, adapter="mlp")
    assert isinstance(TextTower(vectors(), "linear", D, D, adapter="none").adapter, torch.nn.Identity)


def test_pca_without_adapter_is_a_frozen_projection_into_d():
    """The two-step V0: PCA fitted, then nothing trainable between it and the interaction."""
    table = vectors(n=30)
    tower = TextTower(table, "pca", D, D, adapter="none")
    tower.fit_pca(torch.arange(1, 30))
    assert list(tower.parameters()) == []
    ids = torch.tensor([4, 2, 4])
    expected = (table[ids] - tower.tower.pca_mean) @ tower.tower.pca_components.T
    torch.testing.assert_close(tower(ids), expected)


def test_text_dropout_drops_raw_vectors_in_training_only():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="text_dropout"):
        TextTower(vectors(), "linear", R, D, text_dropout=1.0)
    plain = TextTower(vectors(), "linear", R, D)
    assert isinstance(plain.text_dropout, torch.nn.Identity)
    dropped = TextTower(vectors(), "linear", R, D, text_dropout=0.5)
    dropped.load_state_dict(plain.state_dict())  # same weights, same checkpoint keys
    ids = torch.arange(1, 10)
    torch.testing.assert_close(dropped.eval()(ids), plain.eval()(ids))
    dropped.train()
    raw = []
    dropped.tower.register_forward_pre_hook(lambda module, args: raw.append(args[0]))
    out = dropped(ids)
    seen = raw[0]
    kept = seen != 0
    assert 0.2 < kept.float().mean() < 0.8
    torch.testing.assert_close(seen[kept], (dropped.vectors[ids] * 2.0)[kept])  # kept entries scaled by 1/(1-p)
    out.pow(2).sum().backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in dropped.tower.parameters())


# -- rows without text and per-row history lookups ---------------------------------------------
def test_missing_rows_take_the_learned_vector_and_only_they():
    missing = torch.zeros(10, dtype=torch.bool)
    missing[[0, 3]] = True
    tower = TextTower(vectors(), "mlp", R, D, hidden=[8], missing=missing)
    assert tower.missing_vector is not None and float(tower.missing_vector.abs().sum()) == 0.0
    with torch.no_grad():
        tower.missing_vector.fill_(0.5)
    ids = torch.tensor([3, 1, 0, 3, 2])
    out = tower(ids)
    assert torch.equal(out[[0, 2, 3]], torch.full((3, D), 0.5))
    assert not torch.isclose(out[[1, 4]], torch.tensor(0.5)).all()
    out.sum().backward()
    assert torch.equal(tower.missing_vector.grad, torch.full((D,), 3.0))  # three rows use it
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in tower.tower.parameters())
    plain = TextTower(vectors(), "mlp", R, D, hidden=[8])
    assert plain.missing_vector is None and "missing_vector" not in dict(plain.named_parameters())
    with pytest.raises(ValueError, match="one flag per table row"):
        TextTower(vectors(), "mlp", R, D, missing=torch.zeros(4, dtype=torch.bool))


def test_row_history_lookup_maps_listed_pairs_and_leaves_the_rest_to_the_user():
    from recbole_dlrrec.nn.text import RowHistoryLookup

    num_items = 7
    pairs = [(2, 5), (1, 3), (4, 1)]
    keys = torch.tensor([u * num_items + i for u, i in pairs])
    order = torch.argsort(keys)
    lookup = RowHistoryLookup(keys[order], torch.tensor([20, 21, 0])[order], num_items)
    users = torch.tensor([1, 1, 2, 4, 6, 4])
    items = torch.tensor([3, 4, 5, 1, 6, 2])
    assert lookup(users, items).tolist() == [21, 1, 20, 0, 6, 4]
    empty = RowHistoryLookup(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), num_items)
    assert torch.equal(empty(users, items), users)
    assert dict(lookup.state_dict()) == {}  # data, rebuilt from the file: not in checkpoints


def test_row_history_lookup_can_leave_the_rest_to_the_item_at_an_offset():
    """The item review rows: unlisted rows read item + offset (the per-item rows of the table)."""
    from recbole_dlrrec.nn.text import RowHistoryLookup

    num_items = 7
    keys = torch.tensor([1 * num_items + 3, 2 * num_items + 5])
    lookup = RowHistoryLookup(keys, torch.tensor([21, 7]), num_items, unlisted="item", offset=7)
    users = torch.tensor([1, 1, 2, 6])
    items = torch.tensor([3, 4, 5, 6])
    assert lookup(users, items).tolist() == [21, 11, 7, 13]
    empty = RowHistoryLookup(torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), num_items, "item", 7)
    assert empty(users, items).tolist() == [10, 11, 12, 13]
    with pytest.raises(ValueError, match="unlisted must be 'user' or 'item', got 'row'"):
        RowHistoryLookup(keys, keys, num_items, unlisted="row")
