"""nn/layers.py: the DLRM arches' shapes (B x F x D in, B out)."""

import torch

from recbole_dlrrec.nn.layers import DenseArch, FirstOrderArch, InteractionArch, OverArch, SparseArch

B, D = 6, 4


def test_sparse_arch_embeds_tokens_and_token_seqs():
    arch = SparseArch(token_dims=[5, 7], token_seq_dims=[9], dim=D)
    token_ids = torch.tensor([[1, 2]] * B)
    seq = torch.tensor([[1, 3, 0]] * B)
    out = arch(token_ids, [seq])
    assert out.shape == (B, 3, D)
    # Field 1's id 2 is row 5 + 2 of the shared table; padding is left out of the seq mean.
    torch.testing.assert_close(out[0, 1], arch.token_table.weight[7])
    torch.testing.assert_close(out[0, 2], arch.token_seq_tables[0].weight[[1, 3]].mean(0))


def test_interaction_and_over_arch_shapes():
    vectors = torch.randn(B, 5, D)
    dense = torch.randn(B, D)
    interaction = InteractionArch(5)
    with_dense = interaction(vectors, dense)
    assert with_dense.shape == (B, interaction.output_dim(D)) == (B, D + 10)
    assert interaction(vectors).shape == (B, 10)
    assert OverArch(D + 10, [8]).eval()(with_dense).shape == (B,)
    assert DenseArch(3, [8], D)(torch.randn(B, 3)).shape == (B, D)


def test_first_order_arch_starts_with_zero_token_weights():
    arch = FirstOrderArch([5], [4], num_dense=2)
    dense = torch.randn(B, 2)
    with torch.no_grad():
        out = arch(torch.ones(B, 1, dtype=torch.long), [torch.ones(B, 2, dtype=torch.long)], dense)
    assert out.shape == (B,)
    # Token weights and the bias start at 0: only the dense linear term is left.
    torch.testing.assert_close(out, (dense @ arch.dense.weight.T).squeeze(-1))
