"""DLRREC built from parts (models/dlrrec_parts.py) with its head's strategies chosen by name
(models/dlrrec_strategies.py): the parts are what the options say, a build is repeatable bit for
bit, and each strategy does what its name promises."""

from __future__ import annotations

import hashlib

import pytest
import torch

from recbole_dlrrec.config.options import build_options
from recbole_dlrrec.models.dlrrec import DLRREC, DLRRECOptions
from recbole_dlrrec.models.dlrrec_parts import build_parts, load_text_inputs
from recbole_dlrrec.models.dlrrec_strategies import NEGATIVES, REPRESENTATIONS, TEXT_VS_ID_SELF_POSITIVE
from recbole_dlrrec.runtime.quick_start import build_model, load_splits

SWING = {"cl_similarity": "swing"}  # live heads on the tiny fixture (see test_dlrrec.py)


@pytest.fixture
def built(tiny_config):
    def make(model="DLRREC", **overrides):
        config = tiny_config(model, **overrides)
        _, train, _, _ = load_splits(config)
        return build_model(config, train), config, train

    return make


def _state_digest(model) -> str:
    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _train_steps(model, batches):
    """Loss parts of one Adam step per batch, as exact float strings (dropout seeded alike)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model.train()
    torch.manual_seed(0)
    parts_seen = []
    for batch in batches:
        optimizer.zero_grad()
        parts = model.calculate_loss(batch)
        parts_seen.append([float(part.detach()).hex() for part in parts])
        sum(parts).backward()
        optimizer.step()
    return parts_seen


def test_registries_are_keyed_by_their_strategies_names():
    for registry in (REPRESENTATIONS, NEGATIVES):
        assert all(cls.name == name for name, cls in registry.items())


@pytest.mark.parametrize(
    "overrides",
    [
        dict(
            SWING,
            cl_repr="text_vs_id",
            cl_negatives="hard",
            cl_projection="mlp",
            cl_max_anchors=7,
            cl_mask_neighbours=False,
        ),
        dict(SWING, cl_repr="fused", cl_negatives="in_batch", cl_negative_pool="seen", cl_negative_dist="popularity"),
    ],
)
@pytest.mark.slow
def test_two_builds_give_the_same_weights_draws_and_losses_bit_for_bit(built, overrides):
    first, _, train = built(**overrides)
    second, _, _ = built(**overrides)
    assert _state_digest(first) == _state_digest(second)
    assert [name for name, _ in first.named_parameters()] == [name for name, _ in second.named_parameters()]
    batches = [batch for _, batch in zip(range(3), train)]
    losses = _train_steps(first, batches)
    assert losses == _train_steps(second, batches)
    assert any(float.fromhex(step[1]) != 0.0 for step in losses)  # the item head is live
    assert _state_digest(first) == _state_digest(second)


def test_parameters_register_in_build_order(built):
    """DLRM's arches first, then the text towers, then the projection heads: the order the
    global RNG draws their initial weights in (a saved checkpoint's key order too)."""
    model, _, _ = built(cl_projection="mlp", **SWING)
    tops = list(dict.fromkeys(name.split(".")[0] for name, _ in model.named_parameters()))
    assert tops.index("text_sides") > max(tops.index(arch) for arch in ("sparse_arch", "over_arch"))
    assert tops[-1] == "cl_projections"


@pytest.mark.parametrize(
    "overrides, representation, negatives, head_sides, hard_sides, text_sides",
    [
        ({}, "fused", "shared", {"item", "user"}, set(), {"item", "user"}),
        (dict(SWING, cl_repr="id", cl_negatives="hard", w2=0.0), "id", "hard", {"item"}, {"item"}, {"item", "user"}),
        (
            dict(SWING, cl_repr="text", cl_negatives="random", user_text="none", w2=0.0),
            "text",
            "random",
            {"item"},
            set(),
            {"item"},
        ),
        (
            dict(cl_repr="text_vs_id", cl_negatives="in_batch", w1=0.0, w2=0.0),
            "text_vs_id",
            "in_batch",
            set(),
            set(),
            {"item", "user"},
        ),
        (dict(reduction="none", w1=0.0, w2=0.0), "fused", "shared", set(), set(), set()),
    ],
)
def test_the_parts_are_what_the_options_say(
    built, overrides, representation, negatives, head_sides, hard_sides, text_sides
):
    model, config, train = built(**overrides)
    options = model.options
    assert isinstance(options, DLRRECOptions)
    assert type(model.representation_strategy) is REPRESENTATIONS[representation]
    assert type(model.negative_strategy) is NEGATIVES[negatives]
    assert model.cl_repr == options.cl_repr == representation
    assert set(model.samplers) == head_sides and set(model.hard_samplers) == hard_sides
    assert set(model.text_sides) == text_sides
    assert model.weights == {"item": options.w1, "user": options.w2}
    counts = {"item": train._dataset.item_num, "user": train._dataset.user_num}
    assert all(
        len(model._collapse_ids[side]) == min(options.collapse_sample, count - 1) for side, count in counts.items()
    )


def test_the_builder_alone_builds_the_models_parts(built):
    """build_parts after DLRM's arches, from the same options, gives the model's own parts."""
    model, config, train = built(cl_negatives="hard", **SWING)
    options = build_options(DLRRECOptions, config, DLRREC)
    assert options == model.options
    torch.manual_seed(0)
    parts = build_parts(options, config, train._dataset, load_text_inputs(options, config, train._dataset))
    assert set(parts.text_sides) == set(model.text_sides) and set(parts.samplers) == set(model.samplers)
    for side, sampler in parts.samplers.items():
        assert torch.equal(sampler.generator.get_state(), model.samplers[side].generator.get_state())
        anchors = torch.arange(1, 6)
        drawn = [sampler.sample(anchors, 4), model.samplers[side].sample(anchors, 4)]
        assert [t.tolist() for t in drawn[0]] == [t.tolist() for t in drawn[1]]
    for side, tower in parts.text_sides.items():
        assert torch.equal(tower.vectors, model.text_sides[side].vectors)
    assert all(torch.equal(parts.collapse_ids[side], model._collapse_ids[side]) for side in ("item", "user"))


def test_negative_strategies_draw_what_their_names_say(built):
    model, _, train = built(cl_repr="text_vs_id", **SWING)
    sampler = model.samplers["item"]
    anchors = torch.unique(next(iter(train))["item_id"])[:6]
    count = 5
    random = NEGATIVES["random"]().draw(sampler, None, anchors, count, 0.0)
    assert random.negatives.shape == (len(anchors), count) and random.negative_mask is None
    in_batch = NEGATIVES["in_batch"]().draw(sampler, None, anchors, count, 0.0)
    assert torch.equal(in_batch.negatives, in_batch.positives)  # the other anchors' positives
    assert not bool(in_batch.negative_mask.diagonal().any())  # never the anchor's own positive
    shared = NEGATIVES["shared"]().draw(sampler, None, anchors, count, 0.0)
    assert shared.negatives.shape == (count,) and shared.negative_mask.shape == (len(anchors), count)
    assert not NEGATIVES["shared"].needs_hard_table and NEGATIVES["hard"].needs_hard_table
    assert model.representation_strategy.self_positive == TEXT_VS_ID_SELF_POSITIVE


def test_representation_strategies_read_text_and_ids_as_named(built):
    model, _, _ = built(**SWING)
    model.eval()  # no dropout: the text of an id is the same on every call
    ids = torch.arange(1, 7)
    text, id_vectors = model.text_sides["item"](ids), model.id_embedding("item", ids)
    expected = {"fused": text + id_vectors, "text": text, "id": id_vectors, "text_vs_id": text}
    for name, cls in REPRESENTATIONS.items():
        model.representation_strategy = cls()
        torch.testing.assert_close(model.representation("item", ids), expected[name], rtol=0, atol=0)
    draw = model.contrastive_draw("item", ids)
    model.representation_strategy = REPRESENTATIONS["text_vs_id"]()
    reps = model.draw_representations("item", draw)
    count = len(draw.anchors)
    torch.testing.assert_close(reps[:count], model.text_sides["item"](draw.anchors), rtol=0, atol=0)
    torch.testing.assert_close(reps[count:], model.id_embedding("item", draw.ids()[count:]), rtol=0, atol=0)
