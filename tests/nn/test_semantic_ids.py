"""nn/semantic_ids.py: residual k-means codes and their embedding arch."""

from __future__ import annotations

import torch

from recbole_dlrrec.nn.semantic_ids import SemanticIdArch, assign_codes, kmeans, residual_kmeans


def _points(seed=0, n=60, dim=5):
    generator = torch.Generator().manual_seed(seed)
    centres = torch.randn(4, dim, generator=generator) * 10
    return centres[torch.arange(n) % 4] + torch.randn(n, dim, generator=generator) * 0.1


def test_kmeans_finds_well_separated_clusters():
    points = _points().double()
    centres = kmeans(points, 4, torch.Generator().manual_seed(1), iters=50)
    assign = torch.cdist(points, centres).argmin(1)
    for group in range(4):  # each true cluster lands on one centroid, and the four are distinct
        assert assign[group::4].unique().numel() == 1
    assert assign[:4].unique().numel() == 4


def test_residual_codes_are_deterministic_and_refine_level_by_level():
    points = _points()
    books = residual_kmeans(points, levels=3, codes=4, seed=7)
    assert [tuple(b.shape) for b in books] == [(4, 5)] * 3
    again = residual_kmeans(points, levels=3, codes=4, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(books, again))
    codes = assign_codes(points, books)
    assert codes.shape == (60, 3) and int(codes.min()) >= 1 and int(codes.max()) <= 4
    # Each level's reconstruction is closer than the level before it.
    errors, approx = [], torch.zeros_like(points, dtype=torch.float64)
    for level, centres in enumerate(books):
        approx = approx + centres[codes[:, level] - 1]
        errors.append(float((points.double() - approx).pow(2).sum()))
    assert errors[0] > errors[1] > errors[2]


def test_fewer_points_than_codes_give_fewer_centroids():
    points = torch.tensor([[0.0, 0.0], [1.0, 1.0], [0.0, 0.0]])
    books = residual_kmeans(points, levels=1, codes=8, seed=0)
    assert books[0].shape[0] == 2  # two distinct points
    assert assign_codes(points, books)[:, 0].tolist()[0] == assign_codes(points, books)[:, 0].tolist()[2]


def test_the_arch_embeds_each_level_and_sums_first_order_weights():
    codes = torch.tensor([[0, 0], [1, 2], [1, 3]])
    arch = SemanticIdArch(codes, num_codes=3, dim=4, first_order=True)
    out = arch(torch.tensor([1, 2, 2]))
    assert out.shape == (3, 2, 4)
    assert torch.equal(out[0, 0], out[1, 0])  # ids 1 and 2 share their first-level code
    assert not torch.equal(out[0, 1], out[1, 1])
    bias = arch.first_order(torch.tensor([1]))
    expected = arch.bias[0].weight[1] + arch.bias[1].weight[2]
    assert bias.shape == (1, 1) and torch.allclose(bias[0], expected)
