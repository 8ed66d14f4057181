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
