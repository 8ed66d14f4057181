"""RecBole-compatible data loaders that join features once and slice batches on the device.

RecBole 1.2.1's TrainDataLoader / NegSampleEvalDataLoader build every batch in Python: a list of
row numbers becomes an `Interaction` (each column indexed through `index.tolist()`), then
`Dataset.join` looks up the user and item features of those rows the same way. On a small CPU
that per-batch work, not the model, sets the training speed. The loaders here do the join once:

    dataset.inter_feat (N rows) + user_feat[user_id] + item_feat[item_id]
        -> one contiguous tensor per field, N x ..., on the training device      (at start-up)
    each batch: columns.index_select(0, order[start:start + B]) -> Interaction   (per batch)

What they yield is what RecBole's loaders yield, so RecBole's Trainer and Evaluator (and any
RecBole context model, e.g. DeepFM) run unchanged:

* `FastTrainDataLoader`: an `Interaction` per batch with every field of the interaction, user
  and item features, joined with exactly `Dataset.join`'s semantics (user features first, then
  item features; a feature table's columns replace same-named ones). `len()` = batches per
  epoch; `_dataset` / `dataset`, `config`, `shuffle`, `generator`, `step`, `get_model`,
  `update_config` and `set_batch_size` are there as on RecBole's loaders.
* `FastEvalDataLoader`: for labeled evaluation (`eval_args.mode: labeled`, no evaluation
  negative sampling) it yields `(interaction, None, None, None)` per batch of `eval_batch_size`
  rows in file order, as `NegSampleEvalDataLoader` does in that mode.

Shuffling: a permutation of row numbers is drawn each epoch from a `torch.Generator` seeded
with the config's `seed`, so the same seed gives the same order. On the CPU the generator is
drawn exactly as RecBole's own loader draws its generator (torch DataLoader: one int64 for the
worker base seed, the permutation, and the random sampler's trailing permutation at the end of
the pass), so for full epochs the fast loader yields the very batches, in the same order, that
the standard loader yields for the same seed. On a GPU the generator lives on the GPU: orders
are reproducible per seed but differ from the standard path's.

`fast_dataloaders(config, train, valid, test)` swaps these in where RecBole's loader can be
reproduced and keeps RecBole's own loader, saying why in the log, where it cannot: training
negative sampling, full-sort or negative-sampled evaluation, a `transform`, sequential /
knowledge / autoencoder loaders, or a Dataset class whose `join` or
`__getitem__` differs from RecBole's base `Dataset`. `quick_start.load_splits` calls it when
`fast_dataloader` is true (properties/overall.yaml: off; DLRM.yaml / DLRREC.yaml: on).

Distributed runs (several processes, RecBole's DDP path; runtime/launcher.py): every rank
joins the whole table and takes its own rows, as torch's DistributedSampler does for RecBole's
loaders. Training: each epoch's order is `randperm(N)` from a generator seeded with
`seed + epoch` (the same order on every rank), padded to a multiple of the world size by
repeating its first rows (so every rank takes the same number of batches and no rank waits on a
gradient all-reduce that never comes), and rank r takes positions r, r + W, r + 2W, ...;
batches hold `train_batch_size // W` rows per rank, so one step still sees `train_batch_size`
rows over all ranks, as with RecBole's distributed loader. Evaluation: rank r takes rows
r, r + W, ... in file order, unpadded; the patched trainer gathers every rank's scores back
into file order before computing any metric (patches.py, fix 10).

Memory: the joined table holds every field per row, so it grows linearly with the rows, on top
of RecBole's own `inter_feat` (which the Dataset keeps).
"""

from __future__ import annotations

import logging
import math
from typing import Dict, Iterator, Optional, Tuple

import torch
from recbole.data.dataloader.general_dataloader import NegSampleEvalDataLoader, TrainDataLoader
from recbole.data.dataset import Dataset
from recbole.data.interaction import Interaction
from recbole.utils import ModelType

__all__ = [
    "RankShard",
    "FastEvalDataLoader",
    "FastTrainDataLoader",
    "fast_dataloaders",
    "join_columns",
    "unsupported_reason",
]

logger = logging.getLogger(__name__)


def join_columns(dataset, device=None) -> Dict[str, torch.Tensor]:
    """Every interaction row of `dataset` with its user and item features joined, as one tensor
    per field (N x ...), on `device`.

    Same result as `dataset.join(dataset.inter_feat)` (= what `dataset[index]` yields for every
    row), computed with one `index_select` per feature column instead of Python lists, and
    without modifying `dataset.inter_feat`. Field order is the one `join` produces.
    """
    columns: Dict[str, torch.Tensor] = dict(dataset.inter_feat.interaction)
    for table, id_field in ((dataset.user_feat, dataset.uid_field), (dataset.item_feat, dataset.iid_field)):
        if table is None or id_field not in columns:
            continue
        ids = columns[id_field]
        for name, values in table.interaction.items():
            columns[name] = values.index_select(0, ids)
    if device is not None:
        columns = {name: values.to(device) for name, values in columns.items()}
    return {name: values.contiguous() for name, values in columns.items()}


def _neg_sampling_on(neg_sample_args) -> bool:
    """RecBole's own test (NegSampleDataLoader._neg_sampling) for 'this loader samples negatives'."""
    return neg_sample_args["distribution"] != "none" and neg_sample_args["sample_num"] != "none"


def unsupported_reason(config, loader) -> Optional[str]:
    """None when `loader` (a RecBole train/valid/test loader) can be replaced by a fast loader,
    else a short reason why RecBole's loader must stay."""
    if type(loader) not in (TrainDataLoader, NegSampleEvalDataLoader):
        return f"{type(loader).__name__} (only TrainDataLoader and labeled NegSampleEvalDataLoader are replaced)"
    dataset = loader._dataset
    if type(dataset).join is not Dataset.join or type(dataset).__getitem__ is not Dataset.__getitem__:
        return f"{type(dataset).__name__} joins features its own way"
    if config["MODEL_TYPE"] in (ModelType.SEQUENTIAL, ModelType.KNOWLEDGE):
        return f"model type {config['MODEL_TYPE'].name}"
    if config["transform"] is not None:
        return f"transform={config['transform']!r}"
    if _neg_sampling_on(loader.neg_sample_args):
        return "negative sampling"
    return None


class RankShard:
    """One rank's share of the rows in a distributed run (what DistributedSampler gives RecBole's
    loaders): positions rank, rank + world_size, ... of an order of all N rows.

    Args:
        rank: this process's global rank (local_rank + offset).
        world_size: number of processes over all machines.
    """

    def __init__(self, rank: int, world_size: int):
        if not 0 <= rank < world_size:
            raise ValueError(f"rank must lie in [0, {world_size}), got {rank}")
        self.rank, self.world_size, self.epoch = int(rank), int(world_size), 0

    @classmethod
    def of(cls, config) -> "RankShard":
        return cls(int(config["local_rank"]) + int(config["offset"] or 0), int(config["world_size"]))

    def set_epoch(self, epoch: int) -> None:
        """Called by RecBole's Trainer before each training epoch."""
        self.epoch = int(epoch)

    def rows_per_rank(self, n: int, pad: bool) -> int:
        """Rows this rank takes of n: ceil(n / W) for every rank when padded, else its count."""
        if pad:
            return math.ceil(n / self.world_size) if n else 0
        return len(range(self.rank, n, self.world_size))

    def take(self, order: torch.Tensor, pad: bool) -> torch.Tensor:
        """This rank's positions of `order` [N] -> [rows_per_rank(N, pad)]; with `pad`, `order`
        is first extended to a multiple of W by repeating its start (DistributedSampler)."""
        n = order.numel()
        if pad and n % self.world_size:
            total = math.ceil(n / self.world_size) * self.world_size
            order = torch.cat([order, order.repeat(math.ceil(total / n))[: total - n]])
        return order[self.rank :: self.world_size]


class _FastLoader:
    """Shared part: the joined columns on the device and batch assembly."""

    step: int  # rows per batch (per rank when distributed), set by _init_batch_size_and_step
    _batch_size: int

    def __init__(self, config, dataset, sampler=None, shuffle: bool = False, device=None):
        self.config = config
        self._dataset = dataset
        self._sampler = sampler
        # RecBole's Trainer calls `sampler.set_epoch` in distributed runs (torch's index sampler on
        # RecBole's loaders); here it is the rank's share of the rows, None in one process.
        self.sampler = None if config["single_spec"] else RankShard.of(config)
        self.shuffle = bool(shuffle)
        self.device = torch.device(device if device is not None else config["device"])
        self.columns = join_columns(dataset, self.device)
        self.sample_size = len(dataset)
        self.model = None
        self.transform = None
        self.is_sequential = False
        self._init_batch_size_and_step()

    # -- what RecBole's loaders expose ------------------------------------------------------
    @property
    def dataset(self):
        """The RecBole Dataset (RecBole's loaders answer `.dataset` with `_dataset` too)."""
        return self._dataset

    def _init_batch_size_and_step(self) -> None:
        raise NotImplementedError

    def set_batch_size(self, batch_size: int) -> None:
        self._batch_size = batch_size

    def update_config(self, config) -> None:
        self.config = config
        self._init_batch_size_and_step()

    def get_model(self, model) -> None:
        self.model = model

    def __len__(self) -> int:
        rows = self.sample_size if self.sampler is None else self.sampler.rows_per_rank(self.sample_size, self._pads)
        return math.ceil(rows / self.step) if rows else 0

    _pads = False  # whether a distributed pass pads the rows to a multiple of the world size

    @property
    def nbytes(self) -> int:
        """Bytes held by the joined columns."""
        return sum(v.numel() * v.element_size() for v in self.columns.values())

    # -- batches ------------------------------------------------------------------------------
    def _take(self, index: torch.Tensor) -> Interaction:
        return Interaction({name: values.index_select(0, index) for name, values in self.columns.items()})

    def _slice(self, start: int, length: int) -> Interaction:
        # A copy, not a view: a model that edits its input in place must not edit the table.
        return Interaction({name: values.narrow(0, start, length).clone() for name, values in self.columns.items()})


class FastTrainDataLoader(_FastLoader):
    """Training batches of `train_batch_size` rows, reshuffled every epoch when `shuffle`.

    Args:
        config: the RecBole Config (reads train_batch_size, seed, device).
        dataset: the TRAIN Dataset.
        sampler: RecBole's negative sampler (kept as `_sampler`; negative sampling itself is not
            supported, see `unsupported_reason`).
        shuffle: reshuffle the rows every epoch (RecBole: config['shuffle']).
        device: where the joined columns live and batches are sliced; default config['device'].
    """

    _pads = True  # distributed: every rank takes the same number of batches

    def __init__(self, config, dataset, sampler=None, shuffle: bool = True, device=None):
        super().__init__(config, dataset, sampler, shuffle, device)
        self.neg_sample_args = config["train_neg_sample_args"]
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(int(config["seed"]))

    def _init_batch_size_and_step(self) -> None:
        self.step = int(self.config["train_batch_size"])
        if not self.config["single_spec"]:  # RecBole's distributed loader: the global batch is split
            self.step = max(1, self.step // int(self.config["world_size"]))
        self.set_batch_size(self.step)

    def _draw_like_recbole(self, what: str, n: int = 0) -> None:
        """Advance the CPU generator exactly as RecBole's loader (a torch DataLoader with a
        RandomSampler sharing this generator) does: 'base' = the worker base seed drawn when an
        epoch starts, 'tail' = the sampler's trailing empty permutation drawn when it runs out."""
        if what == "base":
            torch.empty((), dtype=torch.int64).random_(generator=self.generator)
        else:
            torch.randperm(n, generator=self.generator)

    def __iter__(self) -> Iterator[Interaction]:
        if self.sampler is not None:
            yield from self._rank_batches()
            return
        n, step = self.sample_size, self.step
        like_recbole = self.device.type == "cpu"
        if like_recbole:
            self._draw_like_recbole("base")
        if not self.shuffle:
            for start in range(0, n, step):
                yield self._slice(start, min(step, n - start))
            return
        order = torch.randperm(n, generator=self.generator, device=self.device)
        for start in range(0, n, step):
            batch = self._take(order[start : start + step])
            if like_recbole and start + step > n:  # a short last batch: the sampler ran out while filling it
                self._draw_like_recbole("tail", n)
            yield batch
        if like_recbole and n % step == 0:  # full last batch: the sampler runs out on the next request
            self._draw_like_recbole("tail", n)

    def _rank_batches(self) -> Iterator[Interaction]:
        """Distributed: this rank's batches of the epoch's order (see the module docstring)."""
        assert self.sampler is not None, "called only when distributed"
        if self.shuffle:
            self.generator.manual_seed(int(self.config["seed"]) + self.sampler.epoch)
            order = torch.randperm(self.sample_size, generator=self.generator, device=self.device)
        else:
            order = torch.arange(self.sample_size, device=self.device)
        mine = self.sampler.take(order, pad=True)
        for start in range(0, mine.numel(), self.step):
            yield self._take(mine[start : start + self.step])


class FastEvalDataLoader(_FastLoader):
    """Labeled evaluation: `(interaction, None, None, None)` per `eval_batch_size` rows, in file
    order (RecBole's NegSampleEvalDataLoader without negative sampling)."""

    def __init__(self, config, dataset, sampler=None, shuffle: bool = False, device=None, phase: str = "test"):
        if shuffle:
            logger.warning("FastEvalDataLoader can't shuffle")
        super().__init__(config, dataset, sampler, False, device)
        self.phase = phase
        self.neg_sample_args = config[f"{phase}_neg_sample_args"]

    def _init_batch_size_and_step(self) -> None:
        self.step = int(self.config["eval_batch_size"])
        self.set_batch_size(self.step)

    def __iter__(self) -> Iterator[Tuple[Interaction, None, None, None]]:
        n, step = self.sample_size, self.step
        if self.sampler is not None:  # rows rank, rank + W, ...; gathered back by the trainer
            mine = self.sampler.take(torch.arange(n, device=self.device), pad=False)
            for start in range(0, mine.numel(), step):
                yield self._take(mine[start : start + step]), None, None, None
            return
        for start in range(0, n, step):
            yield self._slice(start, min(step, n - start)), None, None, None


def fast_dataloaders(config, train_data, valid_data, test_data, device=None):
    """(train, valid, test) with each RecBole loader replaced by its fast counterpart where
    that reproduces it (see `unsupported_reason`); the others are returned as they are."""
    out = []
    for phase, loader in (("train", train_data), ("valid", valid_data), ("test", test_data)):
        reason = unsupported_reason(config, loader)
        if reason is not None:
            logging.getLogger().info(f"fast_dataloader: {phase} keeps RecBole's loader ({reason})")
            out.append(loader)
            continue
        if phase == "train":
            fast = FastTrainDataLoader(config, loader._dataset, loader._sampler, loader.shuffle, device)
        else:
            fast = FastEvalDataLoader(config, loader._dataset, loader._sampler, False, device, phase)
        logging.getLogger().info(
            f"fast_dataloader: {phase} joined once on {fast.device}: {fast.sample_size} rows, "
            f"{len(fast.columns)} fields, {fast.nbytes / 2**20:.1f} MiB"
        )
        out.append(fast)
    return tuple(out)
