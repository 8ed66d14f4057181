"""DLRREC's reduction_init / reduction_warmup_epochs / reduction_lr_scale: the co-trained tower
starts at V0's frozen PCA output, is frozen for the warm-up, then fine-tunes at the scaled rate."""

from __future__ import annotations

import pytest
import torch

from recbole_dlrrec.runtime.quick_start import build_model, load_splits
from recbole_dlrrec.runtime.training import ReductionSchedule, build_trainer


def built(tiny_config, **overrides):
    config = tiny_config("DLRREC", train_precision="fp32", **overrides)
    _, train, valid, _ = load_splits(config)
    return config, build_model(config, train), train


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["mlp", "linear"])
def test_pca_init_starts_at_v0s_frozen_pca_output(tiny_config, kind):
    _, v0, _ = built(tiny_config, reduction="pca")
    _, model, _ = built(tiny_config, reduction=kind, reduction_init="pca")
    for side, module in model.text_sides.items():
        frozen = v0.text_sides[side]
        rows = frozen.vectors[1:].float()
        with torch.no_grad():
            torch.testing.assert_close(module.tower.eval()(rows), frozen.tower(rows), atol=1e-4, rtol=1e-4)
        assert any(p.requires_grad for p in module.tower.parameters())  # co-trained, not frozen


@pytest.mark.slow
def test_random_init_keeps_the_model_bit_identical(tiny_config):
    _, before, _ = built(tiny_config)
    _, now, _ = built(tiny_config, reduction_init="random", reduction_warmup_epochs=0, reduction_lr_scale=1.0)
    assert before.state_dict().keys() == now.state_dict().keys()
    assert all(torch.equal(a, b) for a, b in zip(before.state_dict().values(), now.state_dict().values()))


@pytest.mark.slow
def test_init_needs_a_trained_reduction(tiny_config):
    from recbole_dlrrec.config.keys import ConfigKeyError

    config = tiny_config("DLRREC", reduction="pca", reduction_init="whiten")
    _, train, _, _ = load_splits(config)
    with pytest.raises(ConfigKeyError, match="reduction_init='whiten' starts a trained reduction"):
        build_model(config, train)


def flat(params):
    return torch.cat([p.detach().reshape(-1).clone() for p in params])


@pytest.mark.slow
@pytest.mark.parametrize("fused", [False, True])
def test_warmup_freezes_the_reduction_then_it_fine_tunes_at_the_scaled_rate(tiny_config, fused):
    config, model, train = built(
        tiny_config,
        reduction_init="pca",
        reduction_warmup_epochs=1,
        reduction_lr_scale=0.1,
        fused_optimizer=fused,
        weight_decay=0.0,
    )
    trainer = build_trainer(config, model)
    groups = trainer.optimizer.param_groups
    reduction = model.reduction_parameters()
    assert len(groups) == 2 and {id(p) for p in groups[ReductionSchedule.GROUP]["params"]} == {id(p) for p in reduction}
    others = [p for p in model.parameters() if all(p is not q for q in reduction)]
    steps = len(train)

    start_reduction, start_others = flat(reduction), flat(others)
    trainer._train_epoch(train, 0)  # warm-up: a linear probe on the frozen tower
    assert trainer.optimizer.param_groups[1]["lr"] == 0.0
    assert torch.equal(flat(reduction), start_reduction)
    assert not torch.equal(flat(others), start_others)

    trainer._train_epoch(train, 1)  # thawed, at learning_rate x 0.1
    lr = trainer.optimizer.param_groups[1]["lr"]
    assert lr == pytest.approx(config["learning_rate"] * 0.1)
    moved = (flat(reduction) - start_reduction).abs().max()
    # Adam moves a parameter by at most about lr per step (fresh moments: exactly lr x |g|/(|g|+eps)).
    assert 0 < moved <= steps * lr * 1.001
    assert moved > 0.5 * lr


@pytest.mark.slow
def test_without_warmup_or_scale_the_optimizer_has_one_group(tiny_config):
    config, model, _ = built(tiny_config)
    assert len(build_trainer(config, model).optimizer.param_groups) == 1


def test_schedule_clears_the_state_of_the_thawed_group_only():
    a, b = torch.nn.Parameter(torch.ones(2)), torch.nn.Parameter(torch.ones(2))
    optimizer = torch.optim.Adam([{"params": [a]}, {"params": [b], "lr": 0.0}], lr=0.1)
    (a.sum() + b.sum()).backward()
    optimizer.step()
    schedule = ReductionSchedule(warmup_epochs=2, learning_rate=0.1, scale=0.5)
    schedule.start_epoch(optimizer, 1)
    assert b in optimizer.state and optimizer.param_groups[1]["lr"] == 0.0
    schedule.start_epoch(optimizer, 2)
    assert b not in optimizer.state and a in optimizer.state
    assert optimizer.param_groups[1]["lr"] == pytest.approx(0.05)
