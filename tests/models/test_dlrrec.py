"""DLRREC: shapes, the co-training gradient path, ablation switches, PCA freezing, determinism,
checkpoints and bad input."""

from __future__ import annotations

import io

import pytest
import torch

from recbole_dlrrec.runtime.quick_start import build_model, load_splits, run


@pytest.fixture
def model_and_batch(tiny_config):
    def make(**overrides):
        config = tiny_config("DLRREC", **overrides)
        _, train, valid, test = load_splits(config)
        model = build_model(config, train)
        return model, next(iter(train)), (config, train, valid, test)

    return make


def test_forward_shapes_include_text_vectors(model_and_batch):
    model, batch, (config, *_) = model_and_batch()
    vectors, dense = model.feature_vectors(batch)
    # 4 token + 1 token_seq + dense + item text + user text
    assert vectors.shape == (len(batch), 8, config["embedding_size"])
    assert model(batch).shape == (len(batch),)
    assert model.text_sides["item"].tower(model.text_sides["item"].vectors[:3].float()).shape == (
        3,
        config["reduction_dim"],
    )
    rec, item, user = model.calculate_loss(batch)
    assert rec.dim() == item.dim() == user.dim() == 0


# DLRREC's default positives are Jaccard neighbours. On the tiny fixture an item's Jaccard top-k
# holds nearly every item that shares a user with it, so with the default cl_mask_neighbours no
# negative is left and a head's loss is exactly 0. Tests that need a live head keep SWING's
# sparser tables (the paper's positives, DLRREC-swingPos).
SWING = {"cl_similarity": "swing"}


def test_defaults_use_jaccard_positives_and_the_named_variants_keep_swing(tiny_config):
    assert tiny_config("DLRREC")["cl_similarity"] == "jaccard"
    assert tiny_config("DLRREC-swingPos")["cl_similarity"] == "swing"
    assert tiny_config("DLRREC-paperHead")["cl_similarity"] == "swing"


def test_jaccard_neighbours_masked_out_leave_the_tiny_heads_no_negative(model_and_batch):
    """Why the tests below pin SWING: the degenerate case, stated."""
    model, batch, _ = model_and_batch(w1=0.5, w2=0.5)
    _, item, _ = model.calculate_loss(batch)
    assert float(item.detach()) == 0.0
    draw = model.contrastive_draw("item", batch["item_id"])
    assert bool(draw.mask.all())  # every anchor has a positive ...
    assert not bool(draw.negative_mask.any())  # ... and not one live negative


def _tower_grads(model, loss):
    model.zero_grad()
    loss.backward(retain_graph=True)
    return {
        side: sum(float(p.grad.abs().sum()) for p in mod.tower.parameters() if p.grad is not None)
        for side, mod in model.text_sides.items()
    }


@pytest.mark.slow
def test_reduction_tower_gets_gradients_from_rec_and_contrastive_losses(model_and_batch):
    model, batch, _ = model_and_batch(w1=0.5, w2=0.5, **SWING)
    rec, item, user = model.calculate_loss(batch)
    from_rec = _tower_grads(model, rec)
    assert from_rec["item"] > 0 and from_rec["user"] > 0
    from_ii = _tower_grads(model, item)
    assert from_ii["item"] > 0 and from_ii["user"] == 0  # L_ii shapes only the item tower
    from_uu = _tower_grads(model, user)
    assert from_uu["user"] > 0 and from_uu["item"] == 0


@pytest.mark.slow
def test_zero_weights_give_exactly_the_no_contrastive_loss(model_and_batch):
    off, batch, _ = model_and_batch(w1=0.0, w2=0.0)
    on, _, _ = model_and_batch(w1=0.3, w2=0.2, **SWING)
    off.eval(), on.eval()  # no dropout: the same weights must give the same L_rec
    rec_off, item_off, user_off = off.calculate_loss(batch)
    assert float(item_off) == 0.0 and float(user_off) == 0.0
    assert torch.equal(rec_off + item_off + user_off, off.rec_loss_value(off(batch), batch))
    rec_on, item_on, user_on = on.calculate_loss(batch)
    assert torch.equal(rec_on, rec_off)  # same seed, same init: only the heads differ
    assert float(item_on) > 0 and float(user_on) > 0
    assert off.samplers == {}  # no SWING work when the heads are off


@pytest.mark.slow
def test_pca_reduction_is_frozen_during_training(tiny_config):
    from recbole.utils import get_trainer

    config = tiny_config("DLRREC", reduction="pca", epochs=2)
    _, train, valid, _ = load_splits(config)
    model = build_model(config, train)
    tower = model.text_sides["item"].tower
    assert not any(True for _ in tower.parameters())  # PCA has no trainable weights
    before = {k: v.clone() for k, v in tower.state_dict().items()}
    assert before["pca_components"].abs().sum() > 0  # fitted, not zeros
    trainer = get_trainer(config["MODEL_TYPE"], config["model"])(config, model)
    trainer.fit(train, valid, saved=False)
    for key, value in tower.state_dict().items():
        assert torch.equal(value, before[key]), key
    # ...while the adapter after it did train.
    assert any(p.requires_grad for p in model.text_sides["item"].adapter.parameters())


@pytest.mark.slow
def test_same_seed_same_result(tiny_config, tmp_path):
    results = [
        run(
            "DLRREC",
            config=tiny_config("DLRREC", epochs=2, seed=7),
            saved=False,
            result_file=str(tmp_path / f"{i}.json"),
        )
        for i in range(2)
    ]
    assert results[0]["valid_result"] == results[1]["valid_result"]
    assert results[0]["test_result"] == results[1]["test_result"]
    other = run(
        "DLRREC", config=tiny_config("DLRREC", epochs=2, seed=8), saved=False, result_file=str(tmp_path / "o.json")
    )
    assert other["valid_result"] != results[0]["valid_result"]


def test_save_load_round_trip_weights_only(model_and_batch):
    model, batch, (config, train, *_) = model_and_batch()
    model.eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    buffer.seek(0)
    fresh = build_model(config, train)
    fresh.load_state_dict(torch.load(buffer, weights_only=True))
    fresh.eval()
    assert torch.equal(model.predict(batch), fresh.predict(batch))


@pytest.mark.slow
def test_two_epoch_run_reports_all_metrics_and_collapse(tiny_config, tmp_path):
    results = run("DLRREC", config=tiny_config("DLRREC", epochs=2), result_file=str(tmp_path / "r.json"))
    assert len(results["epochs"]) == 2
    assert set(results["test_result"]) == {"auc", "logloss", "accuracy", "fpr", "precision", "recall", "f1"}
    assert 0.0 <= results["test_result"]["auc"] <= 1.0


@pytest.mark.parametrize(
    "overrides, message",
    [
        # tau, w1, w2, reduction: refused by the config stack before any data (tests/config/).
        ({"reduction_dim": 64}, "reduction_dim=64 is larger than"),  # tiny vectors are 24-d
        ({"item_text_vec": None, "user_text_vec": None}, "expected fields: item and user text vectors"),
        ({"item_text_vec": "nosuch"}, "tiny.nosuch.npz does not exist"),
    ],
)
def test_bad_settings_raise_clear_value_errors(tiny_config, overrides, message):
    config = tiny_config("DLRREC", **overrides)
    _, train, _, _ = load_splits(config)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(".", r"\.")):
        build_model(config, train)


@pytest.mark.slow
def test_nan_loss_names_the_part(model_and_batch):
    model, batch, _ = model_and_batch()
    with torch.no_grad():
        model.over_arch.model[0].weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="loss part L_rec is nan"):
        model.calculate_loss(batch)
    model, batch, _ = model_and_batch(cl_repr="text")
    with torch.no_grad():
        model.text_sides["user"].vectors.fill_(float("nan"))
        model.text_sides["user"].adapter.weight.fill_(float("nan"))
    with pytest.raises(ValueError, match="loss part"):
        model.calculate_loss(batch)


def test_reduction_none_is_plain_dlrm(tiny_config):
    config = tiny_config("DLRREC", reduction="none", w1=0.0, w2=0.0)
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    assert len(model.text_sides) == 0 and model.num_extra_vectors == 0
    # The same backbone as DLRREC's (its defaults are tuned; DLRM.yaml keeps the paper's).
    backbone = {
        k: config[k]
        for k in ("embedding_size", "interaction", "top_mlp", "bottom_mlp", "dcn_layers", "dcn_low_rank", "first_order")
    }
    dlrm = build_model(tiny_config("DLRM", **backbone), train)
    assert sum(p.numel() for p in model.parameters()) == sum(p.numel() for p in dlrm.parameters())


# -- text path switches and the backbone under DLRREC -------------------------------------------
def test_reduction_adapter_none_needs_matching_sizes(tiny_config):
    config = tiny_config("DLRREC", reduction_adapter="none")
    _, train, _, _ = load_splits(config)
    with pytest.raises(
        ValueError,
        match="reduction_adapter: none needs reduction_dim == embedding_size, "
        "got reduction_dim=8 and embedding_size=16",
    ):
        build_model(config, train)


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"reduction_adapter": "mlp"}, "reduction_adapter"),
        ({"text_dropout": -0.1}, "text_dropout"),
        ({"interaction": "cross"}, "interaction"),
    ],
)
def test_bad_text_switches_are_refused_by_the_config_stack(tiny_config, overrides, key):
    from recbole_dlrrec.config.keys import ConfigKeyError

    with pytest.raises(ConfigKeyError, match=f"config key '{key}'"):
        tiny_config("DLRREC", **overrides)


@pytest.mark.slow
def test_pca_without_adapter_is_the_two_step_v0(model_and_batch):
    """reduction pca + reduction_adapter none + reduction_dim == embedding_size: the frozen PCA
    output is the interaction's text vector, with nothing trained in between."""
    model, batch, (config, *_) = model_and_batch(
        reduction="pca", reduction_adapter="none", reduction_dim=16, no_history="zero"
    )
    for side, module in model.text_sides.items():
        assert list(module.parameters()) == [], side
        ids = batch[config["ITEM_ID_FIELD"] if side == "item" else config["USER_ID_FIELD"]]
        pca = module.tower
        expected = (module.vectors[ids].float() - pca.pca_mean) @ pca.pca_components.T
        torch.testing.assert_close(module(ids), expected)
    vectors, _ = model.feature_vectors(batch)
    torch.testing.assert_close(vectors[:, -2:], torch.stack(model.extra_vectors(batch), 1))
    # With the default linear adapter and R != D, a trained Linear sits after the PCA.
    linear, _, _ = model_and_batch(reduction="pca")
    assert sum(p.numel() for p in linear.text_sides["item"].parameters()) == 8 * 16 + 16
    # no_history 'learned' (the default) adds one trained vector, for the users without text only.
    learned, _, _ = model_and_batch(reduction="pca", reduction_adapter="none", reduction_dim=16)
    assert [name for name, _ in learned.text_sides["user"].named_parameters()] == ["missing_vector"]


@pytest.mark.slow
def test_embedding_l2_is_one_more_loss_part(model_and_batch):
    plain, batch, _ = model_and_batch()
    model, _, _ = model_and_batch(embedding_l2=0.01)
    plain.eval(), model.eval()
    parts = model.calculate_loss(batch)
    assert len(parts) == 4 and len(plain.calculate_loss(batch)) == 3
    assert torch.equal(parts[0], plain.calculate_loss(batch)[0])  # same init, same L_rec
    torch.testing.assert_close(parts[3], model.embedding_penalty(batch))
    model.zero_grad()
    parts[3].backward()
    assert float(model.sparse_arch.token_table.weight.grad.abs().sum()) > 0


def test_tower_gets_gradients_through_the_dcn_interaction(model_and_batch):
    model, batch, _ = model_and_batch(interaction="dcn", dcn_low_rank=4, w1=0.0, w2=0.0, text_dropout=0.2)
    rec = model.calculate_loss(batch)[0]
    grads = _tower_grads(model, rec)
    assert grads["item"] > 0 and grads["user"] > 0
    cross = model.interaction_arch.cross
    assert all(float(p.grad.abs().sum()) > 0 for p in cross.parameters())


# -- contrastive head switches (issue #15 item 2) -------------------------------------------------
# Recorded on the tiny fixture at commit eb7b61f (before the switches existed), torch 2.13 CPU,
# train_precision fp32, w1 = w2 = 0.5, eval mode, first train batch: (L_rec, w1*L_ii, w2*L_uu) as
# float.hex, and the sha1 of the item then user draws' ids (anchors, positives, negatives, mask as
# int64). The paper head's values of the new keys (DLRREC-paperHead) must give these exactly. A torch upgrade
# that changes the
# CPU generator's streams changes the draws: re-record them at that commit, never at a later one.
PRE_SWITCH = {
    "shared": (
        {},
        ("0x1.8731540000000p-1", "0x1.91d69a0000000p+0", "0x1.c44ed80000000p+0"),
        "de35ddcbf7c87f5c72ef251d16021dca70c89a7d",
    ),
    "random": (
        {"cl_negatives": "random"},
        ("0x1.8731540000000p-1", "0x1.a5ffac0000000p+0", "0x1.b312f00000000p+0"),
        "466782b49e93b385afab9b5b9196d62e56908d14",
    ),
    "in_batch": (
        {"cl_negatives": "in_batch"},
        ("0x1.8731540000000p-1", "0x1.13def60000000p+1", "0x1.41029a0000000p+1"),
        "b30a0f7b89c4f9076489ae2218660418d9178926",
    ),
    "text": (
        {"cl_repr": "text"},
        ("0x1.8731540000000p-1", "0x1.80c6760000000p+0", "0x1.c9b4fa0000000p+0"),
        "de35ddcbf7c87f5c72ef251d16021dca70c89a7d",
    ),
    "uniform": (
        {"swing_sample_mode": "uniform"},
        ("0x1.8731540000000p-1", "0x1.9f898a0000000p+0", "0x1.f0a78e0000000p+0"),
        "e9778dce452b17b2f1b9b974a07948c81a65bcc5",
    ),
}


def _draw_digest(model, batch):
    import hashlib

    digest = hashlib.sha1()
    for side, field in (("item", "item_id"), ("user", "user_id")):
        draw = model.contrastive_draw(side, batch[field])
        for ids in (draw.anchors, draw.positives, draw.negatives, draw.mask):
            digest.update(ids.long().numpy().tobytes())
    return digest.hexdigest()


@pytest.mark.parametrize("case", sorted(PRE_SWITCH))
def test_default_switches_reproduce_the_pre_switch_heads_exactly(model_and_batch, case):
    overrides, losses, digest = PRE_SWITCH[case]
    # no_history: zero = the user text path as it was at that commit (the learned no-history
    # vector came later, with its own tests in test_dlrrec_user_text.py). The head's switches at
    # the paper's values (DLRREC-paperHead): the defaults became DLRREC-CLplus's after the boards.
    from recbole_dlrrec.config.registry import MODEL_VARIANTS

    paper_head = dict(MODEL_VARIANTS["DLRREC-paperHead"][1])
    # The backbone, reduction and tau as DLRREC.yaml held them at that commit (the tuned defaults came later).
    then = dict(
        interaction="dot",
        top_mlp=[256, 128],
        bottom_mlp=[64, 32],
        dropout_prob=0.1,
        weight_decay=0.0,
        reduction_hidden=[128],
        tau=0.13,
    )
    model, batch, (config, train, *_) = model_and_batch(
        w1=0.5, w2=0.5, train_precision="fp32", no_history="zero", **{**then, **paper_head, **overrides}
    )
    assert (
        config["cl_projection"],
        config["cl_negative_pool"],
        config["cl_negative_dist"],
        config["cl_mask_neighbours"],
    ) == ("none", "all", "uniform", False)
    assert not hasattr(model, "cl_projections")  # no new parameters, the same state_dict
    model.eval()
    assert tuple(float(part.detach()).hex() for part in model.calculate_loss(batch)) == losses
    fresh = build_model(config, train)
    assert _draw_digest(fresh, batch) == digest


@pytest.mark.slow
def test_projection_head_is_trained_by_the_contrastive_loss_only(model_and_batch):
    model, batch, _ = model_and_batch(w1=0.5, w2=0.5, cl_projection="mlp", **SWING)
    assert set(model.cl_projections) == {"item", "user"}
    rec, item, user = model.calculate_loss(batch)

    def grads(loss):
        model.zero_grad()
        loss.backward(retain_graph=True)
        return {
            side: sum(float(p.grad.abs().sum()) for p in head.parameters() if p.grad is not None)
            for side, head in model.cl_projections.items()
        }

    assert grads(item)["item"] > 0 and grads(item)["user"] == 0
    assert grads(user)["user"] > 0
    assert grads(rec) == {"item": 0.0, "user": 0.0}  # the interaction reads unprojected vectors
    # The interaction's vectors are the same with and without the head (same seed, same init).
    plain, _, _ = model_and_batch(w1=0.5, w2=0.5, **SWING)
    model.eval(), plain.eval()
    assert torch.equal(model.calculate_loss(batch)[0], plain.calculate_loss(batch)[0])


def test_text_vs_id_trains_the_text_tower_and_the_id_rows(model_and_batch):
    # Neighbours not masked: on the tiny data an item's top-k covers nearly every item.
    model, batch, _ = model_and_batch(
        w1=0.5, w2=0.0, cl_repr="text_vs_id", cl_negatives="random", cl_mask_neighbours=False
    )
    draw = model.contrastive_draw("item", batch["item_id"])
    assert draw.mask.all()  # every anchor has a positive: itself or a neighbour
    neighbours = model.samplers["item"].neighbour_hits(draw.anchors, draw.positives[:, None])[:, 0]
    itself = draw.positives == draw.anchors
    assert (itself | neighbours).all() and 0.3 < float(itself.float().mean()) < 0.7
    model.samplers["item"].manual_seed(0)
    model.zero_grad()
    model.contrastive_loss("item", batch["item_id"]).backward()
    assert sum(float(p.grad.abs().sum()) for p in model.text_sides["item"].parameters()) > 0
    table = model.sparse_arch.token_table.weight.grad
    model.samplers["item"].manual_seed(0)
    draw = model.contrastive_draw("item", batch["item_id"])
    read = torch.cat([draw.positives, draw.negatives.reshape(-1)])
    id_rows = model._id_rows("item", read).unique()
    assert float(table[id_rows].abs().sum()) > 0  # positives' and negatives' ID rows
    # What the loss reads: the anchors' text, then the ID embeddings of the positives and negatives.
    model.eval()
    reps = model.draw_representations("item", draw)
    count = len(draw.anchors)
    torch.testing.assert_close(reps[:count], model.text_sides["item"](draw.anchors))
    torch.testing.assert_close(reps[count:], model.id_embedding("item", read))


def test_text_vs_id_needs_text_on_each_side_with_a_head(tiny_config):
    from recbole_dlrrec.config.keys import ConfigKeyError

    config = tiny_config("DLRREC", cl_repr="text_vs_id", item_text_vec=None)
    _, train, _, _ = load_splits(config)
    with pytest.raises(ConfigKeyError, match="cl_repr='text_vs_id' needs item text vectors"):
        build_model(config, train)
    build_model(tiny_config("DLRREC", cl_repr="text_vs_id", item_text_vec=None, w1=0.0), train)


@pytest.mark.slow
@pytest.mark.parametrize("negatives", ["random", "shared", "in_batch"])
@pytest.mark.parametrize("repr_", ["fused", "text_vs_id"])
def test_no_anchor_and_no_masked_neighbour_among_its_negatives(model_and_batch, negatives, repr_):
    def effective(draw):
        """anchor -> the set of ids the loss uses as its negatives."""
        ids = draw.negatives if draw.negatives.dim() == 2 else draw.negatives.expand(len(draw.anchors), -1)
        keep = torch.ones_like(ids, dtype=torch.bool) if draw.negative_mask is None else draw.negative_mask
        return [set(row[k].tolist()) for row, k in zip(ids, keep)]

    for mask_neighbours in (False, True):
        model, batch, _ = model_and_batch(
            w1=0.5,
            w2=0.5,
            swing_topk=3,
            cl_negatives=negatives,
            cl_repr=repr_,
            cl_mask_neighbours=mask_neighbours,
            cl_num_negatives=32,
        )
        for side, field in (("item", "item_id"), ("user", "user_id")):
            sampler = model.samplers[side]
            draw = model.contrastive_draw(side, batch[field])
            left = 0
            for a, p, used in zip(draw.anchors.tolist(), draw.positives.tolist(), effective(draw)):
                assert a not in used and p not in used
                row = sampler.neighbour_ids[a][sampler._valid[a]].tolist()
                if mask_neighbours:
                    assert not used & set(row), (side, a)
                left += len(used)
            assert left > 0  # not vacuous: negatives remain


@pytest.fixture(scope="module")
def unseen_data_path(tmp_path_factory):
    """Few rows over many items: about half the items never occur in TRAIN."""
    from conftest import write_tiny_dataset

    return write_tiny_dataset(tmp_path_factory.mktemp("unseen"), name="sparse", n_items=300, n_rows=400, seed=3)


@pytest.mark.slow
@pytest.mark.parametrize("dist", ["uniform", "popularity"])
def test_seen_pool_never_yields_an_unseen_id(unseen_data_path, dist):
    from recbole_dlrrec.runtime.quick_start import build_config

    config = build_config(
        "DLRREC",
        "sparse",
        config_dict={
            "data_path": unseen_data_path,
            "cl_negative_pool": "seen",
            "cl_negative_dist": dist,
            "cl_negatives": "random",
            "cl_num_negatives": 64,
        },
    )
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    seen = set(train.dataset.inter_feat["item_id"].tolist())
    unseen = set(range(1, train.dataset.item_num)) - seen
    assert len(unseen) > 50  # the fixture has what the test needs
    batch = next(iter(train))
    drawn = set()
    for _ in range(20):
        drawn |= set(model.contrastive_draw("item", batch["item_id"]).negatives.reshape(-1).tolist())
        drawn |= set(model.samplers["item"].sample_shared_negatives(64).tolist())
    assert drawn <= seen and len(drawn) > len(seen) // 2
    # The paper's pool (all ids) does draw unseen ids here.
    plain = build_model(
        build_config(
            "DLRREC",
            "sparse",
            config_dict={"data_path": unseen_data_path, "cl_negative_pool": "all", "cl_negative_dist": "uniform"},
        ),
        train,
    )
    assert set(plain.samplers["item"].sample_shared_negatives(2000).tolist()) & unseen


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"cl_projection": "linear"}, "cl_projection"),
        ({"cl_negative_pool": "train"}, "cl_negative_pool"),
        ({"cl_negative_dist": "zipf"}, "cl_negative_dist"),
        ({"cl_repr": "id_vs_text"}, "cl_repr"),
    ],
)
def test_bad_head_switches_are_refused_by_the_config_stack(tiny_config, overrides, key):
    from recbole_dlrrec.config.keys import ConfigKeyError

    with pytest.raises(ConfigKeyError, match=f"config key '{key}'"):
        tiny_config("DLRREC", **overrides)


@pytest.mark.slow
@pytest.mark.parametrize("variant", ["DLRREC-CLplus", "DLRREC-CLtextVsId"])
def test_contrastive_variants_build_and_train_a_step(tiny_config, variant):
    config = tiny_config(variant)
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    assert model.options.cl_projection == "mlp" and model.options.cl_mask_neighbours
    assert model.samplers["item"].mode == "uniform" and model.samplers["item"]._pool_cdf is not None
    sum(model.calculate_loss(next(iter(train)))).backward()
