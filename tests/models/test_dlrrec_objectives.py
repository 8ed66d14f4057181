"""DLRREC's `contrastive` switch (infonce | catalog_softmax | align_uniform) and the collapse
indicators on the projected and the unprojected representations."""

from __future__ import annotations

import pytest
import torch

from recbole_dlrrec.runtime.quick_start import build_model, load_splits


def built(tiny_config, **overrides):
    config = tiny_config("DLRREC", train_precision="fp32", **overrides)
    _, train, _, _ = load_splits(config)
    return config, build_model(config, train), next(iter(train)), train


@pytest.mark.slow
def test_catalog_softmax_contrasts_each_item_anchor_with_the_whole_seen_catalogue(tiny_config):
    # The tiny data's neighbour lists cover its whole catalogue: masked out, no negative would be left.
    config, model, batch, train = built(
        tiny_config, contrastive="catalog_softmax", cl_negative_pool="seen", cl_mask_neighbours=False
    )
    seen = torch.unique(train.dataset.inter_feat["item_id"])
    draw = model.contrastive_draw("item", batch["item_id"])
    assert torch.equal(draw.negatives, seen[seen > 0])
    assert draw.negative_offset is not None and draw.positive_offset is not None
    counts = torch.bincount(train.dataset.inter_feat["item_id"], minlength=train.dataset.item_num)
    torch.testing.assert_close(draw.negative_offset, -torch.log1p(counts[draw.negatives].float()))
    # The anchor itself is no negative.
    assert not bool((draw.negatives[None, :] == draw.anchors[:, None])[draw.negative_mask].any())
    # The user head keeps InfoNCE over its drawn pool.
    user_draw = model.contrastive_draw("user", batch["user_id"])
    assert user_draw.negative_offset is None and len(user_draw.negatives) == config["cl_num_negatives"]
    # Its temperature is cl_catalog_tau: the loss changes with it, and gradients reach the towers.
    model.eval()
    draw = model.contrastive_draw("item", batch["item_id"])
    reps = model.draw_representations("item", draw)
    cold = model.head_loss("item", draw, reps)
    model.options = type(model.options)(**{**model.options.__dict__, "cl_catalog_tau": 0.5})
    assert float(cold.detach()) > 0 and float(cold.detach()) != pytest.approx(
        float(model.head_loss("item", draw, reps).detach())
    )
    model.train()
    _, item, _ = model.calculate_loss(batch)
    item.backward()
    assert float(model.text_sides["item"].tower.net[0].weight.grad.abs().sum()) > 0


@pytest.mark.slow
def test_align_uniform_draws_no_negatives_and_trains(tiny_config):
    _, model, batch, _ = built(tiny_config, contrastive="align_uniform", cl_uniformity_weight=0.5)
    draw = model.contrastive_draw("item", batch["item_id"])
    assert draw.negatives.numel() == 0
    rec, item, user = model.calculate_loss(batch)
    assert torch.isfinite(item) and torch.isfinite(user)
    (rec + item + user).backward()
    assert float(model.text_sides["item"].tower.net[0].weight.grad.abs().sum()) > 0


@pytest.mark.slow
def test_infonce_is_the_default_and_gives_the_same_losses_as_before(tiny_config):
    _, default, batch, _ = built(tiny_config)
    _, named, _, _ = built(tiny_config, contrastive="infonce", cl_catalog_tau=0.01, cl_uniformity_weight=3.0)
    assert default.options.contrastive == "infonce"
    default.eval(), named.eval()
    assert [float(x).hex() for x in default.calculate_loss(batch)] == [
        float(x).hex() for x in named.calculate_loss(batch)
    ]


@pytest.mark.slow
def test_collapse_indicators_cover_the_projected_and_unprojected_representations(tiny_config):
    _, model, _, _ = built(tiny_config, cl_projection="mlp", w2=0.0)
    record = model.on_epoch_end(0)
    assert {"item_mean_cos", "item_effective_rank", "item_mean_cos_projected", "item_effective_rank_projected"} <= set(
        record
    )
    assert "user_mean_cos_projected" not in record  # no user head (w2 = 0), so no user projection
    assert 1.0 <= record["item_effective_rank"] <= model.embedding_size
    # Collapse the item projection: its indicators say so, the unprojected ones do not.
    with torch.no_grad():
        last = model.cl_projections["item"].model[-1]
        last.weight.zero_()
        last.bias.fill_(1.0)
    collapsed = model.on_epoch_end(1)
    assert collapsed["item_mean_cos_projected"] == pytest.approx(1.0)
    assert collapsed["item_effective_rank_projected"] == pytest.approx(1.0)
    assert collapsed["item_mean_cos"] == pytest.approx(record["item_mean_cos"])


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["DLRREC-pcaInit", "DLRREC-catalogSoftmax", "DLRREC-alignUniform"])
def test_the_new_variants_build_and_train_a_step(tiny_config, variant):
    config = tiny_config(variant)
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    assert (config["reduction_init"] == "pca") == (variant == "DLRREC-pcaInit")
    assert config["contrastive"] == {
        "DLRREC-catalogSoftmax": "catalog_softmax",
        "DLRREC-alignUniform": "align_uniform",
    }.get(variant, "infonce")
    loss = sum(model.calculate_loss(next(iter(train))))
    assert torch.isfinite(loss)
    loss.backward()
