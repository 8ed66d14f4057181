"""nn/text.py: a trained reduction that starts from the train-period PCA or its whitening."""

import pytest
import torch

from recbole_dlrrec.nn.text import ReductionTower, TextTower, principal_axes

T, R, D = 12, 4, 6


def training_vectors(n=200, seed=1):
    scale = torch.linspace(5, 0.1, T)
    return torch.randn(n, T, generator=torch.Generator().manual_seed(seed)) * scale + 0.3


@pytest.mark.parametrize("kind", ["mlp", "linear"])
def test_pca_init_starts_at_the_frozen_pca_output(kind):
    x = training_vectors()
    frozen = ReductionTower("pca", T, R)
    frozen.fit_pca(x)
    tower = ReductionTower(kind, T, R, hidden=[8], dropout=0.1, norm="layer", init="pca").eval()
    share = tower.fit_pca(x)
    assert share == pytest.approx(frozen.fit_pca(x))
    probe = torch.randn(7, T, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(tower(probe), frozen(probe), atol=1e-5, rtol=1e-5)
    # ...and it is trained: a loss on its output reaches its weights.
    tower.train()
    tower(probe).pow(2).sum().backward()
    assert all(p.grad is not None for p in tower.parameters())
    assert float(sum(p.grad.abs().sum() for p in tower.parameters())) > 0


def test_whiten_init_gives_unit_variance_uncorrelated_axes_on_the_training_vectors():
    x = training_vectors()
    tower = ReductionTower("linear", T, R, init="whiten")
    tower.fit_pca(x)
    with torch.no_grad():
        z = tower(x).double()
    torch.testing.assert_close(z.mean(0), torch.zeros(R, dtype=torch.float64), atol=1e-4, rtol=0)
    torch.testing.assert_close(torch.cov(z.T), torch.eye(R, dtype=torch.float64), atol=1e-3, rtol=0)


def test_principal_axes_pad_beyond_the_rank_and_never_divide_by_zero():
    x = training_vectors(n=3)  # rank 2 after centring: axes 3 and 4 are zero
    mean, components, share = principal_axes(x, R, whiten=True)
    assert components.shape == (R, T) and torch.isfinite(components).all()
    assert torch.equal(components[2:], torch.zeros(2, T))
    assert share == pytest.approx(1.0)
    torch.testing.assert_close(mean, x.mean(0))


def test_random_init_is_the_tower_as_before():
    torch.manual_seed(0)
    before = ReductionTower("mlp", T, R, hidden=[8], norm="layer")
    torch.manual_seed(0)
    now = ReductionTower("mlp", T, R, hidden=[8], norm="layer", init="random")
    assert now.skip is None
    assert before.state_dict().keys() == now.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), now.state_dict().values()))
    with pytest.raises(ValueError, match="fit_pca needs"):
        now.fit_pca(training_vectors())


def test_init_refuses_a_frozen_kind_and_unknown_names():
    with pytest.raises(ValueError, match="needs a trained reduction"):
        ReductionTower("pca", T, R, init="pca")
    with pytest.raises(ValueError, match="init must be one of"):
        ReductionTower("mlp", T, R, init="svd")


def test_text_tower_passes_init_and_fits_on_the_given_ids():
    table = torch.cat([torch.zeros(1, T), training_vectors(n=40)])
    tower = TextTower(table, "linear", R, D, init="pca")
    ids = torch.arange(1, 30)
    tower.fit_pca(ids)
    frozen = ReductionTower("pca", T, R)
    frozen.fit_pca(table[ids])
    torch.testing.assert_close(tower.tower(table[1:5]), frozen(table[1:5]), atol=1e-5, rtol=1e-5)
