"""SwingSampler: positive and negative distributions, exclusions, mask, seeding, errors."""

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from scipy.stats import chisquare

from recbole_dlrrec.swing.graph import NeighbourTable
from recbole_dlrrec.swing.sampler import SwingSampler

torch.set_num_threads(1)

P_MIN = 1e-4  # fixed seeds make these deterministic; a correct sampler passes with margin

# Node ids 0..5; 0 is padding. Padding entries use -1 (NeighbourTable) or 0 (RecBole style).
IDS = torch.tensor(
    [
        [-1, -1, -1, -1],  # 0: padding row
        [3, 5, 2, -1],  # 1: three neighbours
        [4, -1, -1, -1],  # 2: one neighbour
        [-1, -1, -1, -1],  # 3: none
        [1, 0, 0, 0],  # 4: one neighbour, padded with id 0
        [2, 3, 0, -1],  # 5: two neighbours, id 0 with a score is not a valid id
    ]
)
SCORES = torch.tensor(
    [
        [0.0, 0.0, 0.0, 0.0],
        [5.0, 2.0, 1.0, 0.0],
        [0.3, 0.0, 0.0, 0.0],
        [0.0, 0.0, 0.0, 0.0],
        [1.0, 0.0, 0.0, 0.0],
        [1.0, 3.0, 9.0, 0.0],
    ]
)
N_CORPUS = 6


def sampler(**kwargs):
    return SwingSampler(IDS, SCORES, N_CORPUS, **kwargs)


def frequencies(values, support):
    values = values.reshape(-1).numpy()
    assert set(np.unique(values)) <= set(support)
    return np.array([(values == s).sum() for s in support])


@pytest.mark.parametrize(
    "mode, expected", [("score", {3: 5 / 8, 5: 2 / 8, 2: 1 / 8}), ("uniform", {3: 1 / 3, 5: 1 / 3, 2: 1 / 3})]
)
def test_positive_distribution(mode, expected):
    draws = 30000
    positives, _, mask = sampler(mode=mode, seed=1).sample(torch.full((draws,), 1), 0)
    assert mask.all()
    support = sorted(expected)
    counts = frequencies(positives, support)
    assert chisquare(counts, [draws * expected[s] for s in support]).pvalue > P_MIN


def test_invalid_entries_are_never_positives():
    positives, _, mask = sampler(mode="uniform", seed=3).sample(torch.full((4000,), 5), 0)
    assert mask.all() and set(positives.unique().tolist()) == {2, 3}


def test_mask_and_placeholder_for_anchors_without_neighbours():
    anchors = torch.tensor([0, 1, 2, 3, 4, 5, 3, 0])
    positives, negatives, mask = sampler().sample(anchors, 3)
    assert mask.tolist() == [False, True, True, False, True, True, False, False]
    assert torch.equal(positives[~mask], anchors[~mask])
    assert positives[2] == 4 and positives[4] == 1
    assert negatives.shape == (8, 3) and negatives.dtype == torch.long


def test_negatives_uniform_and_exclude_anchor_and_positive():
    draws, n = 20000, 5
    # Anchor 2 always gets positive 4: negatives are uniform over {1, 3, 5}.
    positives, negatives, _ = sampler(seed=7).sample(torch.full((draws,), 2), n)
    assert (positives == 4).all()
    counts = frequencies(negatives, [1, 3, 5])
    assert chisquare(counts).pvalue > P_MIN
    # Anchor 3 has no neighbour: only itself is excluded, uniform over {1, 2, 4, 5}.
    _, negatives, _ = sampler(seed=8).sample(torch.full((draws,), 3), n)
    assert chisquare(frequencies(negatives, [1, 2, 4, 5])).pvalue > P_MIN


def test_negatives_never_hit_anchor_or_its_drawn_positive_in_mixed_batches():
    generator = torch.Generator().manual_seed(0)
    anchors = torch.randint(0, N_CORPUS, (5000,), generator=generator)
    for mode in ("score", "uniform"):
        positives, negatives, _ = sampler(mode=mode, seed=11).sample(anchors, 4)
        assert not (negatives == anchors[:, None]).any()
        assert not (negatives == positives[:, None]).any()
        assert ((negatives >= 1) & (negatives < N_CORPUS)).all()  # never padding id 0


def test_negatives_on_a_large_corpus_are_uniform():
    n_corpus, draws = 50, 40000
    ids = torch.tensor([[9, 11]] * n_corpus)
    scores = torch.tensor([[1.0, 0.0]] * n_corpus)  # 11 has score 0: not a neighbour
    draw = SwingSampler(ids, scores, n_corpus, seed=2).sample(torch.full((draws,), 7), 1)
    positives, negatives, _ = draw
    assert (positives == 9).all()
    support = [s for s in range(1, n_corpus) if s not in (7, 9)]
    assert chisquare(frequencies(negatives, support)).pvalue > P_MIN


def test_same_seed_same_draws_different_seed_different():
    anchors = torch.arange(N_CORPUS).repeat(50)
    first = sampler(seed=5).sample(anchors, 6)
    second = sampler(seed=5).sample(anchors, 6)
    third = sampler(seed=6).sample(anchors, 6)
    for a, b in zip(first, second):
        assert torch.equal(a, b)
    assert not torch.equal(first[1], third[1])
    # The sampler's generator is its own: global torch seeding does not change the draws.
    torch.manual_seed(123)
    again = sampler(seed=5)
    torch.rand(10)
    assert torch.equal(again.sample(anchors, 6)[1], first[1])
    # manual_seed restarts the stream.
    again.manual_seed(5)
    assert torch.equal(again.sample(anchors, 6)[1], first[1])


def test_shared_negatives():
    draws = 30000
    pool = sampler(seed=4).sample_shared_negatives(draws, exclude=torch.tensor([2, 2, 0, 5, 99]))
    assert pool.shape == (draws,)
    assert chisquare(frequencies(pool, [1, 3, 4])).pvalue > P_MIN
    unrestricted = sampler(seed=4).sample_shared_negatives(draws)
    assert chisquare(frequencies(unrestricted, [1, 2, 3, 4, 5])).pvalue > P_MIN
    with pytest.raises(ValueError, match="whole corpus"):
        sampler().sample_shared_negatives(3, exclude=torch.arange(N_CORPUS))


def test_from_table_and_empty_batch():
    csr = sp.csr_matrix(np.array([[0, 0, 0], [0, 0, 2.0], [0, 2.0, 0]]))
    table = NeighbourTable.from_csr(csr, k=2)
    table_sampler = SwingSampler.from_table(table, n_corpus=3)
    positives, negatives, mask = table_sampler.sample(torch.tensor([1, 2, 0]), 0)
    assert positives.tolist() == [2, 1, 0] and mask.tolist() == [True, True, False]
    assert negatives.shape == (3, 0)
    positives, negatives, mask = table_sampler.sample(torch.tensor([], dtype=torch.long), 4)
    assert positives.shape == (0,) and negatives.shape == (0, 4) and mask.shape == (0,)


def test_errors():
    with pytest.raises(ValueError, match="swing_sample_mode"):
        sampler(mode="topk")
    with pytest.raises(ValueError, match="n x k"):
        SwingSampler(IDS[:, :2], SCORES, N_CORPUS)
    with pytest.raises(ValueError, match=">= 0"):
        SwingSampler(IDS, -SCORES, N_CORPUS)
    with pytest.raises(ValueError, match="integers"):
        SwingSampler(IDS.float(), SCORES, N_CORPUS)
    with pytest.raises(ValueError, match="n_corpus"):
        SwingSampler(IDS, SCORES, 1)
    with pytest.raises(ValueError, match="anchors"):
        sampler().sample(torch.tensor([N_CORPUS]), 1)
    with pytest.raises(ValueError, match="anchors"):
        sampler().sample(torch.tensor([1.0]), 1)
    with pytest.raises(ValueError, match="n_negatives"):
        sampler().sample(torch.tensor([1]), -1)
    # Corpus {1, 2}: anchor 1 with positive 2 leaves no negative.
    tiny = SwingSampler(torch.tensor([[0], [2], [1]]), torch.tensor([[0.0], [1.0], [1.0]]), 3)
    with pytest.raises(ValueError, match="no negative"):
        tiny.sample(torch.tensor([1]), 1)
    assert tiny.sample(torch.tensor([1]), 0)[0].tolist() == [2]


# -- negative pool and distribution (cl_negative_pool / cl_negative_dist) ----------------------
def test_negative_weights_from_train_counts():
    from recbole_dlrrec.swing.sampler import negative_weights

    counts = torch.tensor([0, 3, 0, 16, 1, 0])
    assert negative_weights(counts, "all", "uniform") is None  # the sampler's own draw
    assert negative_weights(counts, "seen", "uniform").tolist() == [0, 1, 0, 1, 1, 0]
    expected = [0.0, 3**0.75, 0.0, 8.0, 1.0, 0.0]
    for pool in ("all", "seen"):  # unseen ids weigh 0 under popularity whatever the pool
        torch.testing.assert_close(
            negative_weights(counts, pool, "popularity"), torch.tensor(expected, dtype=torch.float64)
        )
    with pytest.raises(ValueError, match="cl_negative_pool"):
        negative_weights(counts, "train", "uniform")
    with pytest.raises(ValueError, match="cl_negative_dist"):
        negative_weights(counts, "all", "zipf")


SEEN = torch.tensor([0, 1, 0, 1, 1, 0], dtype=torch.float64)  # ids 1, 3, 4 occur in train


def test_seen_pool_never_yields_an_unseen_id():
    draws = 20000
    pooled = sampler(seed=9, negative_weights=SEEN)
    anchors = torch.randint(0, N_CORPUS, (draws,), generator=torch.Generator().manual_seed(1))
    positives, negatives, _ = pooled.sample(anchors, 3)
    assert set(negatives.unique().tolist()) <= {1, 3, 4}
    assert not (negatives == anchors[:, None]).any() and not (negatives == positives[:, None]).any()
    # Anchor 3 (no neighbour) excludes only itself: uniform over the rest of the pool {1, 4}.
    _, negatives, _ = pooled.sample(torch.full((draws,), 3), 2)
    assert chisquare(frequencies(negatives, [1, 4])).pvalue > P_MIN
    shared = pooled.sample_shared_negatives(draws)
    assert chisquare(frequencies(shared, [1, 3, 4])).pvalue > P_MIN
    shared = pooled.sample_shared_negatives(draws, exclude=torch.tensor([3, 5]))
    assert set(shared.unique().tolist()) == {1, 4}
    assert pooled.n_allowed == 3
    # Anchor 1 with positive 3 leaves {4}; anchor 4 with positive 1 leaves {3}.
    _, negatives, _ = sampler(seed=2, negative_weights=SEEN).sample(torch.tensor([4] * 50), 2)
    assert set(negatives.unique().tolist()) == {3}


def test_popularity_draws_follow_count_to_the_three_quarters():
    from recbole_dlrrec.swing.sampler import negative_weights

    n_corpus, draws = 40, 60000
    counts = torch.arange(n_corpus) % 9  # 0 (unseen) .. 8 train rows per id
    weights = negative_weights(counts, "all", "popularity")
    ids = torch.tensor([[9, 11]] * n_corpus)
    scores = torch.tensor([[1.0, 0.0]] * n_corpus)
    popular = SwingSampler(ids, scores, n_corpus, seed=3, negative_weights=weights)
    support = [i for i in range(1, n_corpus) if counts[i] > 0]
    expected = weights[support] / weights[support].sum()
    shared = popular.sample_shared_negatives(draws)
    assert chisquare(frequencies(shared, support), draws * expected.numpy()).pvalue > P_MIN
    # Per-anchor draws: anchor 7 with positive 9 are excluded, the rest keeps its proportions.
    positives, negatives, _ = popular.sample(torch.full((draws // 4,), 7), 4)
    assert (positives == 9).all()
    rest = [i for i in support if i not in (7, 9)]
    expected = weights[rest] / weights[rest].sum()
    assert chisquare(frequencies(negatives, rest), draws * expected.numpy()).pvalue > P_MIN
    # Excluding ids from a weighted shared pool keeps the others' proportions.
    kept = popular.sample_shared_negatives(draws, exclude=torch.tensor(support[:10]))
    rest = support[10:]
    expected = weights[rest] / weights[rest].sum()
    assert chisquare(frequencies(kept, rest), draws * expected.numpy()).pvalue > P_MIN


def test_default_weights_draw_what_the_sampler_always_drew():
    anchors = torch.arange(N_CORPUS).repeat(20)
    plain = sampler(seed=5)
    reset = sampler(seed=5, negative_weights=SEEN)
    reset.set_negative_weights(None)
    for a, b in zip(plain.sample(anchors, 6), reset.sample(anchors, 6)):
        assert torch.equal(a, b)
    assert torch.equal(plain.sample_shared_negatives(30), reset.sample_shared_negatives(30))


def test_negative_weight_errors():
    with pytest.raises(ValueError, match="one per corpus id"):
        sampler(negative_weights=torch.ones(3))
    with pytest.raises(ValueError, match=">= 0"):
        sampler(negative_weights=-SEEN)
    with pytest.raises(ValueError, match="no id to draw"):
        sampler(negative_weights=torch.tensor([5.0, 0, 0, 0, 0, 0]))  # only the padding id


# -- neighbour masks and self positives ---------------------------------------------------------
def brute_force_hits(anchors, candidates):
    valid = (IDS >= 1) & (IDS < N_CORPUS) & (SCORES > 0)
    if candidates.dim() == 1:
        candidates = candidates.expand(len(anchors), -1)
    return torch.tensor([[bool(((IDS[a] == c) & valid[a]).any()) for c in row] for a, row in zip(anchors, candidates)])


def test_neighbour_hits_are_exactly_the_valid_top_k():
    anchors = torch.tensor([0, 1, 2, 3, 4, 5, 1])
    per_anchor = torch.randint(0, N_CORPUS, (7, 9), generator=torch.Generator().manual_seed(0))
    hits = sampler().neighbour_hits(anchors, per_anchor)
    assert torch.equal(hits, brute_force_hits(anchors, per_anchor))
    shared = torch.arange(N_CORPUS)
    hits = sampler(mode="uniform").neighbour_hits(anchors, shared)
    assert torch.equal(hits, brute_force_hits(anchors, shared))
    assert hits[1].tolist() == [False, False, True, True, False, True]  # 3, 5, 2; not padding -1
    assert hits[5].tolist() == [False, False, True, True, False, False]  # id 0 is never valid
    assert not hits[3].any()


def test_self_positive_draws_from_the_anchor_and_its_top_k():
    draws = 20000
    positives, negatives, mask = sampler(seed=4).sample(torch.full((draws,), 1), 2, self_positive=0.5)
    assert mask.all()
    counts = frequencies(positives, [1, 3, 5, 2])
    expected = np.array([1 / 2, 5 / 16, 2 / 16, 1 / 16]) * draws  # score mode for the other half
    assert chisquare(counts, expected).pvalue > P_MIN
    assert not (negatives == 1).any() and not (negatives == positives[:, None]).any()
    # Without a neighbour the anchor is its own positive, and it counts (mask True).
    positives, _, mask = sampler(seed=4).sample(torch.tensor([3, 3]), 1, self_positive=0.5)
    assert positives.tolist() == [3, 3] and mask.all()
