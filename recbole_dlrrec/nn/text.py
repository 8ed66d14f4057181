"""The text path of DLRREC: a frozen table of text vectors, reduced by a tower and adapted to
the embedding size, so that each side's text joins the interaction as one more feature vector.

    ids B --table--> B x T --(text dropout)--> --ReductionTower--> B x R --adapter--> B x D

Shapes: B = batch, T = text vector size (e.g. 384), R = reduction size, D = embedding size.
The bottleneck the text passes through is min(R, D): with the 'linear' adapter and R != D a
trained R -> D Linear follows the tower, so R > D never widens what reaches the interaction (D
numbers of rank <= min(R, D)), and a frozen PCA (R != D) is followed by a trained map. Adapter
'none' requires R == D: the tower's output is the interaction's vector, R is the bottleneck.
The losses that train the tower live outside (models/dlrrec.py, nn/contrastive.py).

A row's user vector may depend on the row, not only on the user (a train row sees only the
reviews before it): `RowHistoryLookup` maps each row's (user, item) to the row of the user
tower's table that holds its vector (or, for the item review vectors, a row of the item tower's
table), and the tower's `missing` rows (no text at all) may take one learned vector instead of
the tower's output of a zero vector.
"""

from __future__ import annotations

from typing import Optional, Sequence

import torch
from torch import nn

from recbole_dlrrec.nn.layers import Dropout, mlp

#: Reduction kinds; 'none' means no text path at all (the model builds no TextTower).
REDUCTIONS = ("mlp", "linear", "pca", "none")
#: Adapters from R to D: 'linear' (a Linear when R != D, the identity when R == D), 'none'
#: (R must equal D).
ADAPTERS = ("linear", "none")
#: How a trained ('mlp' / 'linear') reduction starts: 'random' (torch's initialisation), 'pca'
#: (the train-period PCA that V0 freezes) or 'whiten' (that PCA with each axis scaled to unit
#: variance on the training vectors).
REDUCTION_INITS = ("random", "pca", "whiten")


def principal_axes(vectors: torch.Tensor, k: int, whiten: bool = False):
    """The top-k principal axes of N x T `vectors`: (mean T, components k x T, explained variance
    share). Rows beyond min(N, T) are zero. `whiten` divides each axis by its standard
    deviation on `vectors`, so the projections have unit variance (an axis beyond the data's
    rank becomes zero)."""
    mean = vectors.mean(0)
    centred = (vectors - mean).double()
    _, singular, vh = torch.linalg.svd(centred, full_matrices=False)
    components = torch.zeros(k, vectors.shape[1], dtype=torch.float64)
    kept = min(k, vh.shape[0])
    components[:kept] = vh[:kept]
    if whiten:
        # Axes whose singular value is rounding noise (numpy's matrix_rank tolerance, in the
        # input's precision, in which the mean is taken) stay zero: scaled up, they would turn
        # that noise into unit-variance inputs.
        eps = torch.finfo(vectors.dtype if vectors.is_floating_point() else torch.float64).eps
        tolerance = float(singular.max()) * max(vectors.shape) * eps if len(singular) else 0.0
        std = singular[:kept] / max(len(vectors) - 1, 1) ** 0.5
        real = singular[:kept] > tolerance
        scale = torch.where(real, 1.0 / std.clamp(min=torch.finfo(torch.float64).tiny), torch.zeros_like(std))
        components[:kept] *= scale.unsqueeze(1)
    energy = singular.pow(2)
    share = float(energy[:k].sum() / energy.sum()) if energy.sum() > 0 else 0.0
    return mean, components.float(), share


class ReductionTower(nn.Module):
    """T -> R text reduction. Input B x T, output B x R.

    Args:
        kind: 'mlp' (hidden layers with norm / dropout), 'linear' (one Linear) or 'pca' (a
            frozen projection, zero until `fit_pca` sets it from training vectors).
        in_dim: T. out_dim: R.
        hidden, dropout, norm: the 'mlp' tower's hidden sizes, dropout and norm
            (None, 'batch' or 'layer'); ignored by the other kinds.
        init: 'random', or 'pca' / 'whiten' for a trained kind: `fit_pca` sets the tower so that
            its output at step 0 is the train-period (whitened) PCA projection, which training
            then moves. 'linear': its Linear becomes the projection. 'mlp': a trained linear
            `skip` path (the projection) is added to the MLP, whose output layer starts at zero,
            so the MLP can only add to the projection.
    """

    pca_mean: torch.Tensor  # buffers of the 'pca' kind: T, and R x T
    pca_components: torch.Tensor

    def __init__(
        self,
        kind: str,
        in_dim: int,
        out_dim: int,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        norm: Optional[str] = None,
        init: str = "random",
    ):
        super().__init__()
        if init not in REDUCTION_INITS:
            raise ValueError(f"init must be one of {REDUCTION_INITS}, got {init!r}")
        if init != "random" and kind not in ("mlp", "linear"):
            raise ValueError(f"init {init!r} needs a trained reduction ('mlp' or 'linear'), got {kind!r}")
        self.kind = kind
        self.init = init
        self.skip: Optional[nn.Linear] = None
        if kind == "mlp":
            self.net: nn.Module = mlp(in_dim, hidden, out_dim, dropout=dropout, norm=norm)
            if init != "random":
                self.skip = nn.Linear(in_dim, out_dim)
                last = self.net[-1]
                assert isinstance(last, nn.Linear)
                nn.init.zeros_(last.weight)
                nn.init.zeros_(last.bias)
        elif kind == "linear":
            self.net = nn.Linear(in_dim, out_dim)
        elif kind == "pca":
            self.register_buffer("pca_mean", torch.zeros(in_dim))
            self.register_buffer("pca_components", torch.zeros(out_dim, in_dim))
        else:
            raise ValueError(f"reduction must be one of {REDUCTIONS}, got {kind!r}")

    @property
    def fits(self) -> bool:
        """Whether `fit_pca` sets anything: the frozen 'pca' kind, or a 'pca' / 'whiten' init."""
        return self.kind == "pca" or self.init != "random"

    @torch.no_grad()
    def fit_pca(self, vectors: torch.Tensor) -> float:
        """Fit the PCA on N x T training vectors: the frozen 'pca' kind's projection, or the
        starting weights of a 'pca' / 'whiten' init (see the class doc). Returns the explained
        variance share."""
        if self.kind == "pca":
            mean, components, share = principal_axes(vectors, self.pca_components.shape[0])
            self.pca_mean.copy_(mean)
            self.pca_components.copy_(components)
            return share
        if self.init == "random":
            raise ValueError("fit_pca needs the 'pca' kind or a 'pca' / 'whiten' init")
        linear = self.skip if self.skip is not None else self.net
        assert isinstance(linear, nn.Linear)
        mean, components, share = principal_axes(vectors, linear.out_features, whiten=self.init == "whiten")
        # (x - mean) @ C^T == x @ C^T - C @ mean: the projection as a Linear.
        linear.weight.copy_(components)
        linear.bias.copy_(-(components.double() @ mean.double()).float())
        return share

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.kind == "pca":
            return (x - self.pca_mean) @ self.pca_components.T
        if self.skip is not None:
            return self.skip(x) + self.net(x)
        return self.net(x)


class TextTower(nn.Module):
    """One side's text path: table lookup -> ReductionTower -> adapter to D. Ids B -> B x D.

    Args:
        vectors: N x T text vectors, row i = id i (row 0 = padding). Kept as a non-persistent
            buffer: it is data, rebuilt from the side file, not a learned weight.
        kind, reduction_dim (R), hidden, dropout, norm: the ReductionTower's arguments.
        dim: D.
        adapter: 'linear': a Linear R -> D when R != D, the identity when R == D; 'none': no
            adapter, R must equal D (so a 'pca' tower gives a frozen projection straight into the
            interaction: the two-step V0).
        text_dropout: dropout on the raw text vectors before the tower (0 adds no module). The
            tower runs once per distinct id of a batch, so rows of one id share one mask.
        vector_dtype: the dtype the table is stored in; None keeps `vectors`' dtype. Under bf16
            autocast the tower's first matmul reads the vectors in bf16 anyway, so storing them
            so halves the memory and the bytes gathered per step.
        missing: N bool, the rows without a text (row 0, users without text), or None. When
            given, one learned D-vector (`missing_vector`, zero at start) replaces the tower's
            output for those rows: an explicit "no text" that the rows without history teach.
        init: the ReductionTower's start ('random', 'pca', 'whiten'); 'pca' / 'whiten' take
            effect when `fit_pca` is called.
    """

    vectors: torch.Tensor  # buffers: the N x T table, and its N missing flags when given
    missing: torch.Tensor

    def __init__(
        self,
        vectors: torch.Tensor,
        kind: str,
        reduction_dim: int,
        dim: int,
        hidden: Sequence[int] = (),
        dropout: float = 0.0,
        norm: Optional[str] = None,
        vector_dtype: Optional[torch.dtype] = None,
        adapter: str = "linear",
        text_dropout: float = 0.0,
        missing: Optional[torch.Tensor] = None,
        init: str = "random",
    ):
        super().__init__()
        if adapter not in ADAPTERS:
            raise ValueError(f"adapter must be one of {ADAPTERS}, got {adapter!r}")
        if adapter == "none" and reduction_dim != dim:
            raise ValueError(f"adapter 'none' needs reduction_dim == dim, got {reduction_dim} and {dim}")
        if not 0 <= text_dropout < 1:
            raise ValueError(f"text_dropout must be in [0, 1), got {text_dropout}")
        self.register_buffer("vectors", vectors if vector_dtype is None else vectors.to(vector_dtype), persistent=False)
        self.text_dropout = Dropout(text_dropout) if text_dropout > 0 else nn.Identity()
        self.tower = ReductionTower(kind, int(vectors.shape[1]), reduction_dim, hidden, dropout, norm, init)
        self.adapter = nn.Identity() if reduction_dim == dim else nn.Linear(reduction_dim, dim)
        self.missing_vector = None
        if missing is not None:
            if missing.shape != vectors.shape[:1]:
                raise ValueError(
                    f"missing must have one flag per table row ({vectors.shape[0]}), got {tuple(missing.shape)}"
                )
            self.register_buffer("missing", missing.bool(), persistent=False)
            # Zeros, not a random draw: the random stream of every later initialisation stays as it was.
            self.missing_vector = nn.Parameter(torch.zeros(dim))

    def fit_pca(self, ids: torch.Tensor) -> float:
        """Fit a 'pca' tower, or a 'pca' / 'whiten' init, on the vectors of `ids` (the ids seen
        in training). Returns the explained variance share."""
        return self.tower.fit_pca(self.vectors[ids].float())

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        # Run the tower once per distinct id of the batch (ids repeat a lot: popular items,
        # active users); measured +40% training speed on restaurants.
        unique, inverse = torch.unique(ids, return_inverse=True)
        x = self.vectors[unique]
        if not torch.is_autocast_enabled(x.device.type):
            x = x.float()  # evaluation (RecBole evaluates without autocast) and fp32 training
        out = self.adapter(self.tower(self.text_dropout(x)))
        if self.missing_vector is not None:
            out = torch.where(self.missing[unique].unsqueeze(1), self.missing_vector.to(out.dtype), out)
        return out[inverse]


class RowHistoryLookup(nn.Module):
    """(user, item) ids of B rows -> B rows of a TextTower's table: the listed rows' own
    entries, every other row its user's id (the full per-user vector) or, with `unlisted`
    'item', its item id + `offset` (the item's full vector where the table holds the per-item
    vectors from row `offset` on). No host sync.

    Args:
        keys: M int64, sorted, user * num_items + item of each listed row (pairs are unique).
        rows: M int64, the table row of each listed row's vector.
        num_items: the item id range (the key's multiplier).
        unlisted: 'user' or 'item': whose id an unlisted row's table row is.
        offset: added to that id.
    """

    keys: torch.Tensor  # buffers, M each
    rows: torch.Tensor

    def __init__(self, keys: torch.Tensor, rows: torch.Tensor, num_items: int, unlisted: str = "user", offset: int = 0):
        super().__init__()
        if keys.shape != rows.shape or keys.dim() != 1:
            raise ValueError(
                f"keys and rows must be 1-d of one length, got {tuple(keys.shape)} and {tuple(rows.shape)}"
            )
        if unlisted not in ("user", "item"):
            raise ValueError(f"unlisted must be 'user' or 'item', got {unlisted!r}")
        self.register_buffer("keys", keys.long(), persistent=False)
        self.register_buffer("rows", rows.long(), persistent=False)
        self.num_items = int(num_items)
        self.unlisted = unlisted
        self.offset = int(offset)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        default = users if self.unlisted == "user" else items
        if self.offset:
            default = default + self.offset
        if self.keys.numel() == 0:
            return default
        key = users * self.num_items + items
        at = torch.searchsorted(self.keys, key).clamp_(max=self.keys.numel() - 1)
        return torch.where(self.keys[at] == key, self.rows[at], default)
