"""DLRM: the interaction is sized by the constructor for the extra feature vectors a subclass
adds (no hook called during __init__)."""

import math

import pytest
import torch

from recbole_dlrrec.models.dlrm import DLRM
from recbole_dlrrec.runtime.quick_start import load_splits


@pytest.fixture
def dlrm_parts(tiny_config):
    config = tiny_config("DLRM")
    _, train, _, _ = load_splits(config)
    return config, train._dataset, next(iter(train))


def test_num_extra_vectors_sizes_the_interaction(dlrm_parts):
    config, dataset, batch = dlrm_parts
    plain = DLRM(config, dataset)
    extended = DLRM(config, dataset, num_extra_vectors=2)
    assert plain.num_extra_vectors == 0 and extended.num_extra_vectors == 2
    assert extended.interaction_arch.num_vectors == plain.interaction_arch.num_vectors + 2
    extras = [torch.randn(len(batch), config["embedding_size"]) for _ in range(2)]
    vectors, _ = extended.feature_vectors(batch, extras)
    assert vectors.shape[1] == extended.interaction_arch.num_vectors
    assert extended(batch, extras).shape == (len(batch),)
    assert plain(batch).shape == (len(batch),)


def test_field_rows_address_the_id_field_in_the_shared_table(dlrm_parts):
    config, dataset, batch = dlrm_parts
    model = DLRM(config, dataset)
    field = model.fields.token.index(config["ITEM_ID_FIELD"])
    ids = batch[config["ITEM_ID_FIELD"]]
    token_ids, _ = model.sparse_input(batch)
    assert torch.equal(model.sparse_arch.field_rows(field, ids), model.sparse_arch.token_rows(token_ids)[:, field])


# -- backbone switches (DLRMOptions) -----------------------------------------------------------
NEW_KEYS = ("interaction", "dcn_layers", "dcn_low_rank", "top_dropout", "embedding_l2", "weight_decay")


def test_default_backbone_is_the_one_before_the_switches(dlrm_parts):
    """The YAML defaults, and a config that lacks the new keys (they then come from DLRM.yaml,
    never from the code), build the old backbone: DLRM's dot interaction, no input dropout, no
    penalty; same weights, same logits, same checkpoint keys."""
    from recbole.utils import init_seed

    from recbole_dlrrec.nn.layers import InteractionArch

    old_backbone = {
        "interaction": "dot",
        "dcn_layers": 2,
        "dcn_low_rank": None,
        "top_dropout": 0.0,
        "embedding_l2": 0.0,
        "weight_decay": 0.0,
    }
    config, dataset, batch = dlrm_parts
    init_seed(7, True)
    model = DLRM(config, dataset).eval()
    assert {key: getattr(model.options, key) for key in NEW_KEYS} == old_backbone
    assert type(model.interaction_arch) is InteractionArch
    assert isinstance(model.over_arch.input_dropout, torch.nn.Identity)
    assert not any("input_dropout" in k or "cross" in k for k in model.state_dict())
    vectors, dense = model.feature_vectors(batch)
    rows, cols = torch.triu_indices(vectors.shape[1], vectors.shape[1], offset=1)
    dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, rows, cols]
    logits = model.over_arch.model(torch.cat([dense, dots], 1)).squeeze(-1)
    logits = logits + model.first_order_arch(*model.sparse_input(batch), model.dense_input(batch))
    assert torch.equal(model(batch), logits)
    assert torch.equal(model.calculate_loss(batch), model.rec_loss_value(logits, batch))

    for key in NEW_KEYS:
        del config.final_config_dict[key]
    init_seed(7, True)
    old = DLRM(config, dataset).eval()
    assert old.options == model.options
    assert all(torch.equal(a, b) for a, b in zip(model.state_dict().values(), old.state_dict().values()))
    assert torch.equal(old(batch), model(batch))


@pytest.mark.parametrize(
    "overrides, key",
    [
        ({"interaction": "attention"}, "interaction"),
        ({"interaction": "dcn", "dcn_layers": 0}, "dcn_layers"),
        ({"interaction": "dcn", "dcn_low_rank": 0}, "dcn_low_rank"),
        ({"top_dropout": -0.1}, "top_dropout"),
        ({"top_dropout": 1.0}, "top_dropout"),
        ({"embedding_l2": -1e-4}, "embedding_l2"),
        ({"weight_decay": -0.1}, "weight_decay"),
    ],
)
def test_bad_backbone_values_are_refused_by_the_config_stack(tiny_config, overrides, key):
    """The key's rule in properties/model/DLRM.yaml refuses the value before any data loads."""
    from recbole_dlrrec.config.keys import ConfigKeyError

    with pytest.raises(ConfigKeyError, match=f"config key '{key}'"):
        tiny_config("DLRM", **overrides)


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("interaction", "attention", "config key 'interaction' must be one of dot|dot_concat|dcn"),
        ("dcn_layers", 0, "config key 'dcn_layers' must be >= 1"),
        ("dcn_low_rank", 0, "config key 'dcn_low_rank' must be >= 1 or null"),
        ("top_dropout", 1.0, "config key 'top_dropout' must be >= 0 and < 1"),
        ("embedding_l2", -1e-4, "config key 'embedding_l2' must be >= 0"),
        ("weight_decay", -0.1, "config key 'weight_decay' must be >= 0"),
    ],
)
def test_the_model_guards_its_backbone_values_too(tiny_config, key, value, message):
    """A Config built around the stack (by hand) still meets the keys' rules: the options object
    checks them against the same notes (config/options.py)."""
    config = tiny_config("DLRM", interaction="dcn")
    _, train, _, _ = load_splits(config)
    config.final_config_dict[key] = value
    with pytest.raises(ValueError, match=message):
        DLRM(config, train._dataset)


@pytest.mark.parametrize(
    "overrides",
    [
        {"interaction": "dot_concat"},
        {"interaction": "dcn", "dcn_layers": 2},
        {"interaction": "dcn", "dcn_low_rank": 4},
        {"top_dropout": 0.2},
    ],
)
def test_each_backbone_gives_logits_and_gradients_to_every_part(tiny_config, overrides):
    config = tiny_config("DLRM", **overrides)
    _, train, _, _ = load_splits(config)
    model = DLRM(config, train._dataset)
    batch = next(iter(train))
    loss = model.calculate_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for name, param in model.named_parameters():
        if name.startswith("first_order_arch"):  # token weights start at 0: no gradient to the arch below
            continue
        assert param.grad is not None and float(param.grad.abs().sum()) > 0, name


@pytest.mark.slow
def test_embedding_l2_penalises_exactly_the_batch_rows(tiny_config):
    config = tiny_config("DLRM", embedding_l2=0.01)
    _, train, _, _ = load_splits(config)
    model = DLRM(config, train._dataset).eval()
    batch = next(iter(train))
    rec, penalty = model.calculate_loss(batch)
    assert torch.equal(rec, model.rec_loss_value(model(batch), batch))

    token_ids, token_seqs = model.sparse_input(batch)
    table = model.sparse_arch.token_table.weight
    rows = model.sparse_arch.token_rows(token_ids)
    expected = table[rows].pow(2).sum()
    for bag, seq in zip(model.sparse_arch.token_seq_tables, token_seqs):
        expected = expected + sum(bag.weight[t].pow(2).sum() for t in seq.reshape(-1) if t != 0)
    torch.testing.assert_close(penalty, 0.01 * expected / len(batch))

    model.zero_grad()
    penalty.backward()
    grad = table.grad
    used = torch.zeros(len(table), dtype=torch.bool)
    used[rows.reshape(-1)] = True
    assert float(grad[used].abs().sum()) > 0 and float(grad[~used].abs().sum()) == 0
    counts = torch.bincount(rows.reshape(-1), minlength=len(table)).float()
    torch.testing.assert_close(grad, 0.01 * 2 * table.detach() * counts[:, None] / len(batch))
    seq_grad = model.sparse_arch.token_seq_tables[0].weight.grad
    assert float(seq_grad[1:].abs().sum()) > 0 and float(seq_grad[0].abs().sum()) == 0  # padding row untouched
    assert model.over_arch.model[0].weight.grad is None  # the penalty touches embeddings only


@pytest.mark.parametrize("fused", [False, True])
def test_weight_decay_reaches_the_optimizer(tiny_config, fused):
    from recbole_dlrrec.runtime.training import build_trainer

    config = tiny_config("DLRM", weight_decay=0.03, fused_optimizer=fused)
    _, train, _, _ = load_splits(config)
    trainer = build_trainer(config, DLRM(config, train._dataset))
    assert bool(trainer.optimizer.param_groups[0].get("fused")) == fused
    assert [group["weight_decay"] for group in trainer.optimizer.param_groups] == [0.03]


def test_pos_weight_auto_balances_the_train_labels(tiny_config):
    config = tiny_config("DLRM", pos_weight="auto")
    _, train, _, _ = load_splits(config)
    labels = train._dataset.inter_feat[config["LABEL_FIELD"]]
    positives = float((labels > 0.5).sum())
    model = DLRM(config, train._dataset)
    assert model.pos_weight == pytest.approx((len(labels) - positives) / positives)
    assert float(model.rec_loss.pos_weight) == pytest.approx(model.pos_weight)
    config.final_config_dict["pos_weight"] = "balanced"  # past the stack, which refuses it
    with pytest.raises(ValueError, match="config key 'pos_weight' must be one of auto, got 'balanced'"):
        DLRM(config, train._dataset)


@pytest.mark.slow
@pytest.mark.parametrize(
    "model_name, overrides",
    [
        ("DLRM", {"interaction": "dcn"}),
        ("DLRM", {"interaction": "dot_concat", "embedding_l2": 1e-4}),
        ("DLRREC", {"interaction": "dcn", "dcn_low_rank": 4, "top_dropout": 0.1, "text_dropout": 0.1}),
        ("DLRREC", {"interaction": "dot_concat", "embedding_l2": 1e-4}),
    ],
)
def test_new_backbones_train_two_epochs_with_finite_loss(tiny_config, model_name, overrides):
    from recbole_dlrrec.runtime.quick_start import build_model
    from recbole_dlrrec.runtime.training import build_trainer

    config = tiny_config(model_name, epochs=2, **overrides)
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    trainer = build_trainer(config, model)
    before = [p.detach().clone() for p in model.parameters()]
    for epoch in range(2):
        loss = trainer._train_epoch(train, epoch)
        total = sum(loss) if isinstance(loss, tuple) else loss
        assert math.isfinite(float(total)), (epoch, loss)
    assert any(not torch.equal(b, p) for b, p in zip(before, model.parameters()))
