"""DLRREC with the paper's open questions switched: cl_negatives: hard and cl_similarity."""

from __future__ import annotations

import pytest
import torch
from conftest import write_tiny_dataset

from recbole_dlrrec.data.text_vectors import TextVectorsMissingError
from recbole_dlrrec.runtime.quick_start import build_model, load_splits


@pytest.fixture(scope="module")
def sparse_data_path(tmp_path_factory):
    """The tiny dataset with few rows, so that ids without a shared interaction exist (on the
    usual 3,000 rows nearly every pair of items shares a user)."""
    return write_tiny_dataset(tmp_path_factory.mktemp("sparse"), n_rows=400)


def _model(tiny_config, **overrides):
    config = tiny_config("DLRREC", **overrides)
    _, train, _, _ = load_splits(config)
    return build_model(config, train), next(iter(train)), train


@pytest.mark.slow
def test_hard_negatives_train_the_towers_and_the_id_table(tiny_config, sparse_data_path):
    model, batch, train = _model(
        tiny_config, data_path=sparse_data_path, cl_negatives="hard", cl_hard_pool=5, w1=0.5, w2=0.5
    )
    assert set(model.hard_samplers) == {"item", "user"}
    draw = model.contrastive_draw("item", batch[model.ITEM_ID])
    assert draw.negatives.shape == (len(draw.anchors), model.options.cl_num_negatives)
    assert not (draw.negatives == draw.anchors[:, None]).any()
    assert not (draw.negatives == draw.positives[:, None]).any()
    # The first cl_hard_pool columns are hard ids when the anchor has that many: none of them
    # shares a train user with its anchor.
    inter = train.dataset.inter_feat
    users_of = {}
    for user, item in zip(inter[model.USER_ID].tolist(), inter[model.ITEM_ID].tolist()):
        users_of.setdefault(item, set()).add(user)
    table = model.hard_samplers["item"]
    checked = 0
    for anchor, row in zip(draw.anchors.tolist(), draw.negatives.tolist()):
        hard = row[: min(int(table.counts[anchor]), len(row))]
        assert set(hard) <= set(table.hard_ids[anchor].tolist())
        assert all(not (users_of[anchor] & users_of.get(i, set())) for i in hard)
        checked += len(hard)
    assert checked > len(draw.anchors)  # the sparse data leaves most anchors hard ids

    rec, item, user = model.calculate_loss(batch)
    model.zero_grad()
    (item + user).backward()
    for side in ("item", "user"):
        tower = model.text_sides[side].tower
        assert sum(float(p.grad.abs().sum()) for p in tower.parameters() if p.grad is not None) > 0
    assert float(model.sparse_arch.token_table.weight.grad.abs().sum()) > 0


@pytest.mark.slow
def test_hard_negatives_need_the_sides_text_vectors(tiny_config):
    with pytest.raises(TextVectorsMissingError, match="user_text_vec"):
        _model(tiny_config, cl_negatives="hard", user_text_vec=None, w2=0.5)
    model, _, _ = _model(tiny_config, cl_negatives="hard", user_text_vec=None, w2=0.0)
    assert set(model.hard_samplers) == {"item"}  # only the sides with a head need text


@pytest.mark.slow
@pytest.mark.parametrize("similarity", ["itemcf_cosine", "jaccard"])
def test_other_similarities_give_the_positives(tiny_config, similarity):
    # Neighbours not masked: on the tiny data an item's top-k covers nearly every item.
    model, batch, _ = _model(tiny_config, cl_similarity=similarity, w1=0.5, w2=0.5, cl_mask_neighbours=False)
    swing, _, _ = _model(tiny_config, cl_similarity="swing", w1=0.5, w2=0.5, cl_mask_neighbours=False)
    assert not torch.equal(model.samplers["item"].neighbour_ids, swing.samplers["item"].neighbour_ids)
    rec, item, user = model.calculate_loss(batch)
    assert torch.isfinite(item) and float(item.detach()) > 0 and float(user.detach()) > 0


@pytest.mark.slow
def test_hard_negatives_with_masked_neighbours_and_the_head_switches(tiny_config, sparse_data_path):
    """The switches of both helpers together: hard negatives, every top-k neighbour masked out,
    a projection head, text against ID: finite losses, no neighbour among the live negatives."""
    model, batch, _ = _model(
        tiny_config,
        data_path=sparse_data_path,
        cl_negatives="hard",
        cl_hard_pool=5,
        cl_mask_neighbours=True,
        cl_projection="mlp",
        cl_repr="text_vs_id",
        w1=0.5,
        w2=0.5,
    )
    draw = model.contrastive_draw("item", batch[model.ITEM_ID])
    sampler = model.samplers["item"]
    hits = sampler.neighbour_hits(draw.anchors, draw.negatives)
    assert draw.negative_mask is not None and not (draw.negative_mask & hits).any()
    parts = model.calculate_loss(batch)
    assert all(bool(torch.isfinite(p)) for p in parts)
    sum(parts).backward()
    assert all(p.grad is not None for p in model.cl_projections.parameters())
