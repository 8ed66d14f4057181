"""nn/contrastive.py: InfoNCE against its formula, ContrastiveDraw masks and loss, gradients
into a text tower, the collapse indicator."""

import math

import pytest
import torch

from recbole_dlrrec.nn.contrastive import ContrastiveDraw, info_nce, mean_pairwise_cosine
from recbole_dlrrec.nn.text import TextTower

A, N, D = 4, 5, 3


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def cos(x, y):
    return float(x @ y / (x.norm() * y.norm()))


def test_info_nce_matches_the_formula_for_shared_and_per_anchor_negatives():
    anchor, positive, pool = randn(A, D, seed=1), randn(A, D, seed=2), randn(N, D, seed=3)
    tau = 0.2
    shared = info_nce(anchor, positive, pool, tau)
    per_anchor = info_nce(anchor, positive, pool.expand(A, N, D), tau)
    assert shared.shape == per_anchor.shape == (A,)
    for a in range(A):
        pos = math.exp(cos(anchor[a], positive[a]) / tau)
        neg = sum(math.exp(cos(anchor[a], pool[n]) / tau) for n in range(N))
        assert float(shared[a]) == pytest.approx(-math.log(pos / (pos + neg)), rel=1e-9)
    torch.testing.assert_close(shared, per_anchor)


def test_negative_mask_leaves_masked_negatives_out():
    anchor, positive, pool = randn(A, D, seed=1), randn(A, D, seed=2), randn(N, D, seed=3)
    mask = torch.ones(A, N, dtype=torch.bool)
    mask[:, 0] = False
    torch.testing.assert_close(info_nce(anchor, positive, pool, 0.5, mask), info_nce(anchor, positive, pool[1:], 0.5))


def test_shared_negatives_mask_the_anchor_and_its_positive():
    anchors = torch.tensor([1, 2, 3])
    positives = torch.tensor([2, 5, 1])
    pool = torch.tensor([1, 2, 5, 7])
    draw = ContrastiveDraw.with_shared_negatives(anchors, positives, pool, torch.ones(3, dtype=torch.bool))
    expected = torch.tensor(
        [
            [False, False, True, True],  # anchor 1, positive 2
            [True, False, False, True],  # anchor 2, positive 5
            [False, True, True, True],
        ]
    )  # anchor 3, positive 1
    assert torch.equal(draw.negative_mask, expected)
    assert torch.equal(draw.ids(), torch.tensor([1, 2, 3, 2, 5, 1, 1, 2, 5, 7]))


def per_anchor_draw():
    anchors, positives = torch.tensor([1, 2, 3]), torch.tensor([4, 5, 6])
    negatives = torch.tensor([[7, 8], [8, 9], [9, 7]])
    return ContrastiveDraw(anchors, positives, negatives, None, torch.tensor([True, False, True]))


def test_loss_is_the_mean_over_masked_in_anchors_only():
    draw = per_anchor_draw()
    reps = randn(len(draw.ids()), D, seed=4)
    loss = draw.loss(reps, 0.3)
    a, p, n = reps[:3], reps[3:6], reps[6:].reshape(3, 2, D)
    expected = info_nce(a, p, n, 0.3)[[0, 2]].mean()
    torch.testing.assert_close(loss, expected.float() if loss.dtype == torch.float32 else expected)
    # The masked-out anchor (index 1) and its positive do not move the loss.
    moved = reps.clone()
    moved[1] += 10.0
    moved[4] -= 3.0
    torch.testing.assert_close(draw.loss(moved, 0.3), loss)


def test_loss_is_zero_when_no_anchor_has_a_positive():
    draw = per_anchor_draw()
    draw.mask = torch.zeros(3, dtype=torch.bool)
    assert float(draw.loss(randn(len(draw.ids()), D), 0.3)) == 0.0


def test_loss_gradient_reaches_the_text_tower():
    table = torch.randn(12, 8, generator=torch.Generator().manual_seed(0))
    tower = TextTower(table, "mlp", 4, D, hidden=[6])
    draw = per_anchor_draw()
    draw.loss(tower(draw.ids()), 0.3).backward()
    grads = [float(p.grad.abs().sum()) for p in tower.tower.parameters()]
    assert all(g > 0 for g in grads)


def test_mean_pairwise_cosine():
    assert mean_pairwise_cosine(torch.ones(5, D) * torch.arange(1, 6)[:, None]) == pytest.approx(1.0)
    assert mean_pairwise_cosine(torch.eye(D)) == pytest.approx(0.0)
    two = torch.tensor([[1.0, 0.0], [1.0, 1.0]])
    assert mean_pairwise_cosine(two) == pytest.approx(math.sqrt(0.5))


def test_excluding_adds_to_the_negative_mask():
    draw = per_anchor_draw()
    excluded = torch.tensor([[True, False], [False, False], [False, True]])
    masked = draw.excluding(excluded)
    assert torch.equal(masked.negative_mask, ~excluded) and draw.negative_mask is None
    reps = randn(len(draw.ids()), D, seed=5)
    a, p, n = reps[:3], reps[3:6], reps[6:].reshape(3, 2, D)
    # Anchor 0 keeps only negative 8, anchor 2 only negative 9.
    expected = torch.stack([info_nce(a[:1], p[:1], n[0, 1:], 0.3)[0], info_nce(a[2:], p[2:], n[2, :1], 0.3)[0]])
    torch.testing.assert_close(masked.loss(reps, 0.3), expected.mean().float())
    # On a shared draw it keeps the anchor / positive exclusions.
    shared = ContrastiveDraw.with_shared_negatives(
        torch.tensor([1, 2]), torch.tensor([2, 5]), torch.tensor([1, 5, 7]), torch.ones(2, dtype=torch.bool)
    )
    both = shared.excluding(torch.tensor([[False, True, False], [False, False, True]]))
    assert both.negative_mask.tolist() == [[False, False, True], [True, False, False]]


def test_projection_head_maps_d_to_d_and_learns_from_the_loss():
    from recbole_dlrrec.nn.contrastive import ProjectionHead

    torch.manual_seed(0)
    head = ProjectionHead(D).double()
    assert [m.__class__.__name__ for m in head.model] == ["Linear", "ReLU", "Linear"]
    assert head.model[0].weight.shape == (D, D) and head.model[2].weight.shape == (D, D)
    draw = per_anchor_draw()
    reps = randn(len(draw.ids()), D, seed=6).requires_grad_()
    projected = head(reps)
    assert projected.shape == reps.shape
    draw.loss(projected, 0.3).backward()
    assert all(float(p.grad.abs().sum()) > 0 for p in head.parameters())
    assert float(reps.grad.abs().sum()) > 0  # and through it, the representations
