"""The interaction choices of nn/layers.py (dot, dot_concat, dcn), the DCN-V2 CrossNet's formula
and gradients, and the OverArch's input dropout."""

import pytest
import torch

from recbole_dlrrec.nn.layers import (
    INTERACTIONS,
    CrossNet,
    DCNInteractionArch,
    DotConcatInteractionArch,
    InteractionArch,
    OverArch,
    interaction_arch,
)

B, F, D = 5, 4, 3


@pytest.mark.parametrize("kind", INTERACTIONS)
@pytest.mark.parametrize("with_dense", [False, True])
def test_each_interaction_has_the_output_size_it_announces(kind, with_dense):
    torch.manual_seed(0)
    arch = interaction_arch(kind, F, D, dcn_layers=2, dcn_low_rank=2)
    vectors = torch.randn(B, F, D)
    dense = vectors[:, -1] if with_dense else None
    out = arch(vectors, dense)
    dense_dim = D if with_dense else 0
    expected = {"dot": dense_dim + F * (F - 1) // 2, "dot_concat": F * D + F * (F - 1) // 2, "dcn": F * D}[kind]
    assert arch.output_dim(dense_dim) == expected
    assert out.shape == (B, expected)


def test_dot_is_dlrms_interaction_and_dot_concat_adds_the_vectors():
    vectors = torch.randn(B, F, D)
    dense = torch.randn(B, D)
    dot = interaction_arch("dot", F, D)
    assert type(dot) is InteractionArch and not list(dot.parameters())
    dots = torch.stack([vectors[:, i] @ vectors[:, j].T for i in range(F) for j in range(i + 1, F)], -1)
    dots = torch.diagonal(dots, dim1=0, dim2=1).T  # B x F(F-1)/2: row b's own dots
    assert torch.allclose(dot(vectors, dense), torch.cat([dense, dots], 1), atol=1e-6)
    concat = DotConcatInteractionArch(F, D)
    assert torch.allclose(concat(vectors, dense), torch.cat([vectors.reshape(B, -1), dots], 1), atol=1e-6)


def test_unknown_interaction_and_bad_cross_sizes_are_refused():
    with pytest.raises(ValueError, match="interaction must be one of"):
        interaction_arch("attention", F, D)
    with pytest.raises(ValueError, match="num_layers"):
        CrossNet(6, 0)
    with pytest.raises(ValueError, match="low_rank"):
        CrossNet(6, 1, low_rank=0)


def test_cross_layer_follows_the_dcn_v2_formula():
    torch.manual_seed(1)
    net = CrossNet(6, 2)
    with torch.no_grad():
        for bias in net.biases:
            bias.normal_()
    x0 = torch.randn(B, 6)
    x1 = x0 * (x0 @ net.weights[0].T + net.biases[0]) + x0
    x2 = x0 * (x1 @ net.weights[1].T + net.biases[1]) + x1
    assert torch.allclose(net(x0), x2, atol=1e-5)


def test_low_rank_cross_layer_is_the_full_layer_with_w_equal_u_v_transposed():
    torch.manual_seed(2)
    low = CrossNet(6, 1, low_rank=2)
    full = CrossNet(6, 1)
    u, v = low.weights[0], low.weights_v[0]
    assert u.shape == v.shape == (6, 2)
    with torch.no_grad():
        full.weights[0].copy_(u @ v.T)
        low.biases[0].normal_()
        full.biases[0].copy_(low.biases[0])
    x0 = torch.randn(B, 6)
    assert torch.allclose(low(x0), full(x0), atol=1e-5)
    assert sum(p.numel() for p in low.parameters()) == 6 * 2 * 2 + 6


def test_gradients_reach_every_cross_weight_and_the_input():
    torch.manual_seed(3)
    arch = DCNInteractionArch(F, D, num_layers=3, low_rank=2)
    vectors = torch.randn(B, F, D, requires_grad=True)
    arch(vectors).pow(2).sum().backward()
    for name, param in arch.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name
    assert vectors.grad.abs().sum() > 0


def test_over_arch_input_dropout_is_off_by_default_and_in_eval():
    torch.manual_seed(4)
    plain = OverArch(8, [4])
    assert isinstance(plain.input_dropout, torch.nn.Identity)
    dropped = OverArch(8, [4], input_dropout=0.5)
    # The checkpoint keys are those of the OverArch without input dropout.
    assert list(dropped.state_dict()) == list(plain.state_dict())
    dropped.load_state_dict(plain.state_dict())
    x = torch.randn(64, 8)
    dropped.eval()
    plain.eval()
    assert torch.equal(dropped(x), plain(x))
    dropped.train()
    plain.train()
    assert not torch.equal(dropped(x), plain(x))
