"""The DLRM arches, in torchrec's naming: SparseArch, DenseArch, InteractionArch, OverArch.

Interactions (`interaction_arch`): 'dot' InteractionArch (DLRM's pairwise dots), 'dot_concat'
DotConcatInteractionArch (the vectors themselves beside their dots), 'dcn'
DCNInteractionArch (a DCN-V2 CrossNet over the concatenated vectors).

Shapes in docstrings: B = batch, F = number of feature vectors, D = embedding size.
Losses live outside these modules (in the models' `calculate_loss`).
"""

from __future__ import annotations

from typing import List, Optional, Sequence, Union

import torch
from torch import nn


class Dropout(nn.Dropout):
    """nn.Dropout with a cheaper mask on the CPU.

    torch draws a CPU dropout mask with one Mersenne-Twister call per element (bernoulli_),
    which cost more than the matmuls of DLRREC's MLPs on the 2-core benchmark machine
    (results/bench/). Here one 64-bit draw gives four 16-bit uniforms (read as signed int16); an
    element is kept when its uniform is >= round(p * 2^16) - 2^15, and kept values are scaled by
    the exact inverse of that keep rate, so E[output] = input as in nn.Dropout (p is rounded to a
    multiple of 2^-16). Randomness still comes from torch's global generator (the config seed).
    Elsewhere (CUDA) it is nn.Dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0 or x.device.type != "cpu" or self.inplace:
            return super().forward(x)
        dropped = int(round(self.p * 65536))
        if dropped >= 65536:
            return x * 0.0
        count = x.numel()
        bits = torch.empty((count + 3) // 4, dtype=torch.int64).random_(-(2**63), 2**63 - 1)
        keep = bits.view(torch.int16)[:count].view(x.shape) >= dropped - 32768
        scale = 65536.0 / (65536 - dropped)
        return x * keep.to(x.dtype).mul_(scale)


def mlp(
    in_features: int,
    hidden: Sequence[int],
    out_features: Optional[int] = None,
    dropout: float = 0.0,
    norm: Optional[str] = None,
    activation: str = "relu",
    final_activation: bool = False,
) -> nn.Sequential:
    """A plain MLP: [Linear -> (norm) -> activation -> dropout] per hidden size, then an
    optional output Linear (no activation unless `final_activation`).

    Args:
        norm: None, "batch" or "layer".
        activation: "relu", "gelu" or "tanh".
    """
    acts = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh}
    norms = {"batch": nn.BatchNorm1d, "layer": nn.LayerNorm}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, got {activation!r}")
    if norm is not None and norm not in norms:
        raise ValueError(f"norm must be null or one of {sorted(norms)}, got {norm!r}")
    layers: List[nn.Module] = []
    width = in_features
    for size in hidden:
        layers.append(nn.Linear(width, size))
        if norm is not None:
            layers.append(norms[norm](size))
        layers.append(acts[activation]())
        if dropout > 0:
            layers.append(Dropout(dropout))
        width = size
    if out_features is not None:
        layers.append(nn.Linear(width, out_features))
        if final_activation:
            layers.append(acts[activation]())
    return nn.Sequential(*layers)


class SparseArch(nn.Module):
    """Embeds token fields (one shared table with per-field offsets) and token_seq fields
    (mean over the non-padding tokens of each row).

    Input: token ids B x F_tok (long), a list of F_seq token_seq tensors B x L_f (0 = padding).
    Output: B x (F_tok + F_seq) x D.
    """

    token_offsets: torch.Tensor  # buffer, F_tok

    def __init__(self, token_dims: Sequence[int], token_seq_dims: Sequence[int], dim: int):
        super().__init__()
        self.num_token = len(token_dims)
        self.num_token_seq = len(token_seq_dims)
        # Field f's ids live at rows offsets[f] .. offsets[f] + token_dims[f] - 1 of one table.
        offsets = [0]
        for size in list(token_dims)[:-1]:
            offsets.append(offsets[-1] + int(size))
        self.register_buffer("token_offsets", torch.tensor(offsets[: len(token_dims)]), persistent=False)
        self.token_table = nn.Embedding(int(sum(token_dims)), dim) if token_dims else None
        # EmbeddingBag with padding_idx=0 leaves padding out of the mean.
        self.token_seq_tables = nn.ModuleList(
            nn.EmbeddingBag(n, dim, mode="mean", padding_idx=0) for n in token_seq_dims
        )
        for table in [self.token_table, *self.token_seq_tables]:
            if table is not None:
                nn.init.xavier_normal_(table.weight)

    @property
    def num_vectors(self) -> int:
        return self.num_token + self.num_token_seq

    def token_rows(self, token_ids: torch.Tensor) -> torch.Tensor:
        """Rows of the shared table for token ids B x F_tok (field f's ids shifted by its offset)."""
        return token_ids + self.token_offsets

    def field_rows(self, field: int, ids: torch.Tensor) -> torch.Tensor:
        """Rows of the shared table for ids (any shape) of token field number `field`."""
        return ids + self.token_offsets[field]

    def forward(
        self,
        token_ids: Optional[torch.Tensor],
        token_seqs: Sequence[torch.Tensor],
        token_vectors: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """`token_vectors`: the B x F_tok x D rows of `token_ids`, when the caller looked them up
        together with other rows of the table (one lookup, one table-sized gradient)."""
        parts = []
        if self.token_table is not None:
            if token_vectors is None:
                assert token_ids is not None, "a model with token fields passes their ids"
                token_vectors = self.token_table(self.token_rows(token_ids))  # B x F_tok x D
            parts.append(token_vectors)
        for table, seq in zip(self.token_seq_tables, token_seqs):
            parts.append(table(seq).unsqueeze(1))  # B x 1 x D
        return torch.cat(parts, dim=1)


class FirstOrderArch(nn.Module):
    """One scalar weight per token (and per token_seq token, averaged) plus a linear term on the
    dense features: the first-order part FM and DeepFM have. DLRM's top MLP sees only the dot
    products (and the dense vector), so a per-id bias such as an item's popularity is otherwise
    hard to express. Input as SparseArch plus dense B x F_dense (or None); output B."""

    def __init__(self, token_dims: Sequence[int], token_seq_dims: Sequence[int], num_dense: int):
        super().__init__()
        self.weights = SparseArch(token_dims, token_seq_dims, 1)
        for table in [self.weights.token_table, *self.weights.token_seq_tables]:
            if table is not None:
                nn.init.zeros_(table.weight)
        self.dense = nn.Linear(num_dense, 1, bias=False) if num_dense else None
        self.bias = nn.Parameter(torch.zeros(1))

    def forward(self, token_ids, token_seqs, dense: Optional[torch.Tensor]) -> torch.Tensor:
        out = self.bias.expand(token_seqs[0].shape[0] if token_ids is None else token_ids.shape[0])
        if self.weights.num_vectors:
            out = out + self.weights(token_ids, token_seqs).sum(dim=(1, 2))
        if self.dense is not None:
            out = out + self.dense(dense).squeeze(-1)
        return out


class DenseArch(nn.Module):
    """Bottom MLP over the dense float features. Input B x F_dense, output B x D."""

    def __init__(self, in_features: int, hidden: Sequence[int], dim: int, dropout: float = 0.0):
        super().__init__()
        self.model = mlp(in_features, hidden, dim, dropout=dropout, final_activation=True)

    def forward(self, dense: torch.Tensor) -> torch.Tensor:
        return self.model(dense)


class InteractionArch(nn.Module):
    """Pairwise dot products of all feature vectors, as in DLRM.

    Input: the feature vectors B x F x D and, when the model has dense features, the dense
    arch's output B x D. Output: B x (D + F*(F-1)/2) with a dense input (it is passed through
    beside the dots, as in DLRM), else B x F*(F-1)/2: the strictly upper-triangular dots.
    """

    rows: torch.Tensor  # buffers, F(F-1)/2 each
    cols: torch.Tensor

    def __init__(self, num_vectors: int):
        super().__init__()
        rows, cols = torch.triu_indices(num_vectors, num_vectors, offset=1)
        self.register_buffer("rows", rows, persistent=False)
        self.register_buffer("cols", cols, persistent=False)
        self.num_vectors = num_vectors

    def output_dim(self, dense_dim: int) -> int:
        return dense_dim + int(self.rows.numel())

    def forward(self, vectors: torch.Tensor, dense: Optional[torch.Tensor] = None) -> torch.Tensor:
        dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, self.rows, self.cols]  # B x F(F-1)/2
        return dots if dense is None else torch.cat([dense, dots], dim=1)


class DotConcatInteractionArch(InteractionArch):
    """The feature vectors themselves, flattened, beside their pairwise dots: the top MLP sees
    what each vector is, not only how the vectors align (a dot product cannot express "this
    item is popular" or "this user likes expensive places" on its own).

    Input: vectors B x F x D (the dense arch's output is one of them, so it is not passed
    through a second time). Output: B x (F*D + F*(F-1)/2).
    """

    def __init__(self, num_vectors: int, dim: int):
        super().__init__(num_vectors)
        self.dim = dim

    def output_dim(self, dense_dim: int) -> int:
        return self.num_vectors * self.dim + int(self.rows.numel())

    def forward(self, vectors: torch.Tensor, dense: Optional[torch.Tensor] = None) -> torch.Tensor:
        dots = torch.bmm(vectors, vectors.transpose(1, 2))[:, self.rows, self.cols]  # B x F(F-1)/2
        return torch.cat([vectors.flatten(1), dots], dim=1)


class CrossNet(nn.Module):
    """The cross network of DCN-V2 (Wang et al. 2021), written from the paper's formula:

        x_{l+1} = x_0 * (W_l x_l + b_l) + x_l        (* elementwise; l = 0 .. num_layers-1)

    W_l is a full N x N matrix, or with `low_rank` r the product U_l V_l^T of two N x r matrices
    (the paper's cheaper variant: N*2r weights per layer instead of N^2). Each layer adds one
    degree of explicit feature crossing, bounded by x_0; the residual keeps lower degrees.
    Input and output B x N.

    Args:
        in_features: N. num_layers: how many cross layers (>= 1). low_rank: r (>= 1), or None
            for full rank.
    """

    def __init__(self, in_features: int, num_layers: int, low_rank: Optional[int] = None):
        super().__init__()
        if num_layers < 1:
            raise ValueError(f"num_layers must be >= 1, got {num_layers}")
        if low_rank is not None and low_rank < 1:
            raise ValueError(f"low_rank must be >= 1 or None, got {low_rank}")
        self.low_rank = low_rank
        shape = (in_features, in_features) if low_rank is None else (in_features, low_rank)
        # Full rank: weights[l] = W_l (N x N). Low rank: weights[l] = U_l and weights_v[l] = V_l
        # (N x r each), W_l x = U_l (V_l^T x); on a batch of rows, (x @ V_l) @ U_l^T.
        self.weights = nn.ParameterList(nn.Parameter(torch.empty(*shape)) for _ in range(num_layers))
        self.weights_v = nn.ParameterList(
            nn.Parameter(torch.empty(*shape)) for _ in range(num_layers if low_rank is not None else 0)
        )
        self.biases = nn.ParameterList(nn.Parameter(torch.zeros(in_features)) for _ in range(num_layers))
        for weight in [*self.weights, *self.weights_v]:
            nn.init.xavier_normal_(weight)

    @property
    def num_layers(self) -> int:
        return len(self.biases)

    def forward(self, x0: torch.Tensor) -> torch.Tensor:
        x = x0
        for layer in range(self.num_layers):
            if self.low_rank is None:
                wx = x @ self.weights[layer].T  # B x N
            else:
                wx = (x @ self.weights_v[layer]) @ self.weights[layer].T  # B x r -> B x N: U (V^T x)
            x = x0 * (wx + self.biases[layer]) + x
        return x


class DCNInteractionArch(nn.Module):
    """DCN-V2 interaction, as torchrec's DLRM_DCN and the MLPerf DLRM-DCNv2 benchmark use it: the
    feature vectors (the dense arch's output among them) are concatenated and crossed by a
    CrossNet; its output goes to the top MLP.

    Input: vectors B x F x D (`dense` is ignored: it is already one of the vectors).
    Output: B x F*D.
    """

    def __init__(self, num_vectors: int, dim: int, num_layers: int, low_rank: Optional[int] = None):
        super().__init__()
        self.num_vectors = num_vectors
        self.dim = dim
        self.cross = CrossNet(num_vectors * dim, num_layers, low_rank)

    def output_dim(self, dense_dim: int) -> int:
        return self.num_vectors * self.dim

    def forward(self, vectors: torch.Tensor, dense: Optional[torch.Tensor] = None) -> torch.Tensor:
        return self.cross(vectors.flatten(1))


#: `interaction` choices of DLRM / DLRREC.
INTERACTIONS = ("dot", "dot_concat", "dcn")


def interaction_arch(
    kind: str, num_vectors: int, dim: int, dcn_layers: int = 2, dcn_low_rank: Optional[int] = None
) -> Union[InteractionArch, DCNInteractionArch]:
    """The interaction arch named `kind` (INTERACTIONS) for F = num_vectors vectors of size D.
    Each has `output_dim(dense_dim)` and `forward(vectors B x F x D, dense B x D or None)`."""
    if kind == "dot":
        return InteractionArch(num_vectors)
    if kind == "dot_concat":
        return DotConcatInteractionArch(num_vectors, dim)
    if kind == "dcn":
        return DCNInteractionArch(num_vectors, dim, dcn_layers, dcn_low_rank)
    raise ValueError(f"interaction must be one of {INTERACTIONS}, got {kind!r}")


class OverArch(nn.Module):
    """Top MLP to one logit. Input B x H, output B.

    Args:
        dropout: after each hidden layer. input_dropout: on the input (the interaction's
            output) before the first layer; 0 adds no module.
    """

    def __init__(self, in_features: int, hidden: Sequence[int], dropout: float = 0.0, input_dropout: float = 0.0):
        super().__init__()
        # A separate attribute, not model[0]: model's indices (and so checkpoints' keys) stay
        # as they were without input dropout.
        self.input_dropout = Dropout(input_dropout) if input_dropout > 0 else nn.Identity()
        self.model: nn.Sequential = mlp(in_features, hidden, 1, dropout=dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(self.input_dropout(x)).squeeze(-1)
