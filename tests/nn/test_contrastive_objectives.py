"""nn/contrastive.py: the full-catalogue softmax with its log-frequency correction against a
brute-force log-softmax, alignment and uniformity against their formulas, gradients, and the
effective rank."""

import math

import pytest
import torch

from recbole_dlrrec.nn.contrastive import ContrastiveDraw, alignment, effective_rank, info_nce, uniformity

D = 3


def randn(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_catalogue_softmax_equals_a_brute_force_log_softmax_with_the_correction():
    n_ids = 7  # ids 0..6; 0 is padding, the catalogue is 1..6
    table = randn(n_ids, D, seed=1)
    counts = torch.tensor([0, 5, 0, 1, 30, 2, 7], dtype=torch.float64)
    log_counts = torch.log1p(counts)
    catalogue = torch.arange(1, n_ids)
    anchors, positives = torch.tensor([1, 4, 6]), torch.tensor([3, 5, 4])
    mask = torch.tensor([True, True, False])
    tau = 0.1
    draw = ContrastiveDraw.over_catalogue(anchors, positives, mask, catalogue, log_counts)
    loss = draw.loss(table[draw.ids()], tau)

    expected = []
    for a, p in zip(anchors.tolist(), positives.tolist()):
        x = torch.nn.functional.normalize(table, dim=-1)
        logits = {c: float(x[a] @ x[c]) / tau - math.log1p(float(counts[c])) for c in catalogue.tolist() if c != a}
        log_z = math.log(sum(math.exp(v) for v in logits.values()))
        expected.append(log_z - logits[p])  # -log softmax of the positive over the catalogue minus the anchor
    # draw.loss computes in fp32
    assert float(loss) == pytest.approx(sum(expected[:2]) / 2, rel=1e-6)  # the third anchor is masked out


def test_offsets_change_the_logits_and_none_is_plain_info_nce():
    anchor, positive, pool = randn(2, D, seed=1), randn(2, D, seed=2), randn(4, D, seed=3)
    plain = info_nce(anchor, positive, pool, 0.5)
    zeros = info_nce(anchor, positive, pool, 0.5, None, torch.zeros(2, dtype=torch.float64), torch.zeros(4))
    assert torch.equal(plain, zeros)
    # Lowering every negative's logit by log 2 halves their weight in the denominator.
    halved = info_nce(anchor, positive, pool, 0.5, None, None, torch.full((4,), -math.log(2.0)))
    a, p, n = (torch.nn.functional.normalize(x, dim=-1) for x in (anchor, positive, pool))
    pos = torch.exp((a * p).sum(-1) / 0.5)
    neg = torch.exp(a @ n.T / 0.5)
    torch.testing.assert_close(halved, -torch.log(pos / (pos + neg.sum(1) / 2)))


def test_alignment_and_uniformity_match_their_formulas():
    a, p = randn(4, D, seed=1), randn(4, D, seed=2)
    unit = torch.nn.functional.normalize
    torch.testing.assert_close(alignment(a, p), ((unit(a, dim=-1) - unit(p, dim=-1)) ** 2).sum(-1))
    x = unit(a, dim=-1)
    pairs = [(i, j) for i in range(4) for j in range(4) if i != j]
    brute = math.log(sum(math.exp(-2 * float(((x[i] - x[j]) ** 2).sum())) for i, j in pairs) / len(pairs))
    assert float(uniformity(a)) == pytest.approx(brute, rel=1e-9)
    # A weight of 0 drops a row from every pair.
    weight = torch.tensor([1.0, 1.0, 0.0, 1.0], dtype=torch.float64)
    assert float(uniformity(a, weight)) == pytest.approx(float(uniformity(a[[0, 1, 3]])), rel=1e-9)
    assert float(uniformity(a[:1])) == 0.0  # no pair


def test_align_uniform_loss_is_alignment_plus_weighted_uniformity_over_masked_in_anchors():
    anchors, positives = torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5])
    mask = torch.tensor([True, False, True])
    draw = ContrastiveDraw.with_shared_negatives(anchors, positives, anchors.new_empty((0,)), mask)
    reps = randn(6, D, seed=4)
    loss = draw.align_uniform_loss(reps, uniformity_weight=0.5)
    keep = [0, 2]
    aligned = alignment(reps[:3][keep], reps[3:][keep]).mean()
    spread = (uniformity(reps[:3][keep]) + uniformity(reps[3:][keep])) / 2
    assert float(loss) == pytest.approx(float(aligned + 0.5 * spread), rel=1e-6)  # computed in fp32


@pytest.mark.parametrize("objective", ["catalogue", "align_uniform"])
def test_gradients_flow_into_every_representation_the_loss_reads(objective):
    table = randn(7, D, seed=5).requires_grad_(True)
    anchors, positives = torch.tensor([1, 2]), torch.tensor([3, 4])
    mask = torch.ones(2, dtype=torch.bool)
    if objective == "catalogue":
        draw = ContrastiveDraw.over_catalogue(anchors, positives, mask, torch.arange(1, 7), torch.zeros(7))
        loss = draw.loss(table[draw.ids()], 0.1)
    else:
        draw = ContrastiveDraw.with_shared_negatives(anchors, positives, anchors.new_empty((0,)), mask)
        loss = draw.align_uniform_loss(table[draw.ids()], 1.0)
    loss.backward()
    read = draw.ids().unique()
    assert bool((table.grad[read].abs().sum(1) > 0).all())
    assert float(table.grad[0].abs().sum()) == 0.0  # the padding id is never read


def test_effective_rank_is_one_for_a_line_and_the_dimension_for_a_spread():
    line = torch.randn(50, 1, generator=torch.Generator().manual_seed(0)) * torch.tensor([[1.0, 2.0, 3.0]])
    assert effective_rank(line) == pytest.approx(1.0, abs=1e-3)
    spread = torch.eye(4).repeat(10, 1) * torch.tensor([1.0, -1.0]).repeat_interleave(20).unsqueeze(1)
    assert effective_rank(spread) == pytest.approx(4.0, rel=1e-4)
    assert math.isnan(effective_rank(torch.randn(1, 3)))
