"""How to convert: one typed options object, each option declared once with its default and help.

:class:`ConvertOptions` is what :func:`~recbole_dlrrec.data.convert.pipeline.convert` takes, and
:func:`add_arguments` / :func:`from_args` build the command line's flags from its fields (name,
type, default, help and, where the flag is not ``--<field>``, the flag), so the command line
cannot drift from the options.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import typing
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

from recbole_dlrrec.data import text_build
from recbole_dlrrec.data.convert.jsonl import DEFAULT_MAX_LINE_BYTES
from recbole_dlrrec.data.convert.records import ConversionError
from recbole_dlrrec.data.convert.split import check_ratios

DEFAULT_RATIOS = (0.8, 0.1, 0.1)
DEFAULT_LABEL_THRESHOLD = 4.0
DEFAULT_SEED = 2026
#: The default of ``category_filter``: the source's own (``Source.default_category_filter``).
SOURCE_DEFAULT = "<the source's default>"
#: ``user_vector`` choices: concatenated texts encoded per user and row, or means of review vectors.
USER_VECTORS = ("concat", "mean")

ImageEncoder = Callable[[dict, list], Any]
#: Registry of image encoders: name -> callable, or None for "off". See the package docstring.
IMAGE_ENCODERS: dict[str, Optional[ImageEncoder]] = {"none": None}


def register_image_encoder(name: str, fn: ImageEncoder) -> None:
    """Make ``fn`` selectable as ``--image_encoder name``."""
    if not name or name == "none":
        raise ValueError("image encoder name must be non-empty and not 'none'")
    IMAGE_ENCODERS[name] = fn


def option(default: Any, help: str, **cli: Any) -> Any:
    """A field of :class:`ConvertOptions`: its default, its help, and how its flag differs from
    ``--<name>`` taking one value of the field's type. ``cli`` keys: ``flag`` (another spelling,
    e.g. ``--no_user_history`` for a True-by-default switch), ``choices`` (a callable: the
    registry is read when the parser is built), ``nargs`` / ``metavar``, ``empty_is_none`` (an
    empty string on the command line gives None), ``report`` (the option shapes the dataset: it
    is stored in the report's ``params``)."""
    return dataclasses.field(default=default, metadata={"help": help, **cli})


@dataclass(frozen=True)
class ConvertOptions:
    """How to convert; every field is also a flag of ``recbole-dlrrec convert`` (see :func:`option`)."""

    split: str = option(
        "time",
        "time (cut the global timeline, default) or random (seeded shuffle)",
        choices=lambda: ("time", "random"),
        report=True,
    )
    ratios: Sequence[float] = option(
        DEFAULT_RATIOS,
        "train/valid/test shares, positive, summing to 1",
        nargs=3,
        metavar=("TRAIN", "VALID", "TEST"),
        report=True,
    )
    seed: int = option(DEFAULT_SEED, "seed of the random split", report=True)
    label_threshold: float = option(
        DEFAULT_LABEL_THRESHOLD, "label = rating >= this; in (1, 5] so that both labels can occur", report=True
    )
    category_filter: Optional[str] = option(
        SOURCE_DEFAULT,
        "keep businesses with a category containing this text (case-insensitive); '' keeps all "
        "(default: the source's own, see --source)",
        empty_is_none=True,
        report=True,
    )
    strict: bool = option(False, "malformed or incomplete lines are fatal (file:line) instead of counted", report=True)
    include_leaky_meta: bool = option(
        False, "also write avg_rating/num_of_reviews (LEAKY: all-time values)", report=True
    )
    user_text_max_chars: int = option(
        text_build.DEFAULT_USER_TEXT_MAX_CHARS, "cap of a user's profile text", report=True
    )
    image_encoder: str = option(
        "none",
        "image encoder slot (default none: pictures only give pic_count)",
        choices=lambda: sorted(IMAGE_ENCODERS),
        report=True,
    )
    k_core: Optional[int] = option(
        None,
        "keep users and businesses with at least K train reviews (iterated to a fixed point; default off)",
        report=True,
    )
    max_line_bytes: int = option(
        DEFAULT_MAX_LINE_BYTES,
        "skip (and count as line_too_long) input lines longer than this many bytes, "
        "unread, so one huge line cannot take the memory of many (default 1048576: 1 MiB)",
        report=True,
    )
    user_history: bool = option(
        True,
        "skip NAME.userhist.npz (a text per train row from its user's earlier reviews: one encoder pass per "
        "train row, the slowest part of a build); DLRREC then reads the full user vector, which holds a "
        "train row's own review (leaky)",
        flag="--no_user_history",
    )
    user_vector: str = option(
        "concat",
        "how user vectors are made: concat (default: one concatenated text per user, and per train row for "
        "NAME.userhist.npz, each encoded) or mean (each train review encoded once; user, per-row history and "
        "item review vectors NAME.itemrev.npz / NAME.itemrevhist.npz are means of review vectors)",
        choices=lambda: USER_VECTORS,
        report=True,
    )
    encoder_model: Optional[str] = option(None, "sentence-transformers model folder (default: bundled MiniLM)")
    encoder_cache: Optional[str] = option(None, "sqlite vector cache (default: OUT/.encoder_cache/vectors.sqlite)")
    encoder_batch_size: int = option(64, "texts per encoder batch")
    encoder_device: str = option(
        "auto", "device of the text encoder: auto (default: the GPU when torch sees one), cpu, cuda, cuda:N"
    )
    encoder_workers: Optional[int] = option(
        None,
        "CPU processes encoding at once, one torch thread each (default: one per core for 512 texts or "
        "more); the vectors are the same bytes for any count",
    )
    encoder_backend: str = option(
        "torch",
        "torch (default) or onnx (onnxruntime on the CPU: pip install onnxruntime onnx; checked to "
        "cosine >= 0.9999 with torch's vectors, cached apart)",
        choices=lambda: ("torch", "onnx"),
    )
    ray_address: Optional[str] = option(
        None, "encode the texts on the Ray cluster at HOST:PORT or auto (Ray Data actors holding the model)"
    )
    encoder_ray_actors: int = option(1, "actors (one CPU each) that encode on the Ray cluster")
    force: bool = option(
        False,
        "rebuild OUT/NAME even when it holds files the converter did not write (they are "
        "deleted; refused by default, naming them: dataset_folder.py)",
    )
    show_progress: bool = option(True, "no progress bars", flag="--quiet")

    def with_source_defaults(self, default_category_filter: Optional[str]) -> "ConvertOptions":
        """These options with ``category_filter`` left at SOURCE_DEFAULT replaced by the source's."""
        if self.category_filter == SOURCE_DEFAULT:
            return dataclasses.replace(self, category_filter=default_category_filter)
        return self

    def validate(self) -> None:
        """Every option checked before any input is read (one-line ConversionError)."""
        if self.image_encoder not in IMAGE_ENCODERS:
            raise ConversionError(f"unknown image encoder {self.image_encoder!r}; known: {sorted(IMAGE_ENCODERS)}")
        if self.split not in ("time", "random"):
            raise ConversionError(f"split must be 'time' or 'random', got {self.split!r}")
        check_ratios(self.ratios)
        if self.user_vector not in USER_VECTORS:
            raise ConversionError(f"user_vector must be one of {', '.join(USER_VECTORS)}, got {self.user_vector!r}")
        t = self.label_threshold
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not math.isfinite(t) or not 1 < t <= 5:
            raise ConversionError(
                f"label_threshold must be in (1, 5] (ratings are 1-5; label = rating >= threshold), got {t!r}: "
                "anything else gives a dataset with no positive or no negative row"
            )
        if self.user_text_max_chars <= 0:
            raise ConversionError(f"user_text_max_chars must be positive, got {self.user_text_max_chars}")
        if self.k_core is not None and (
            isinstance(self.k_core, bool) or not isinstance(self.k_core, int) or self.k_core < 1
        ):
            raise ConversionError(f"k_core must be a positive integer, got {self.k_core!r}")
        if isinstance(self.max_line_bytes, bool) or not isinstance(self.max_line_bytes, int) or self.max_line_bytes < 1:
            raise ConversionError(f"max_line_bytes must be a positive integer, got {self.max_line_bytes!r}")
        if self.encoder_batch_size <= 0:
            raise ConversionError(f"encoder_batch_size must be positive, got {self.encoder_batch_size}")
        if self.encoder_workers is not None and self.encoder_workers < 1:
            raise ConversionError(f"encoder_workers must be at least 1, got {self.encoder_workers}")
        if self.encoder_ray_actors < 1:
            raise ConversionError(f"encoder_ray_actors must be at least 1, got {self.encoder_ray_actors}")
        if self.encoder_backend == "onnx":
            from recbole_dlrrec.data.encode_onnx import INSTALL_HINT, missing_packages

            if missing_packages():
                raise ConversionError(
                    f"--encoder_backend onnx needs {' and '.join(missing_packages())}: {INSTALL_HINT}"
                )
        if self.encoder_device != "auto":
            from recbole_dlrrec.data.encoder import resolve_device

            resolve_device(self.encoder_device)  # an unknown or absent device fails before any input is read

    def params(self) -> dict:
        """The options that shape the dataset (those declared with ``report=True``), as stored in the report."""
        return {
            f.name: list(getattr(self, f.name)) if f.metadata.get("nargs") else getattr(self, f.name)
            for f in dataclasses.fields(self)
            if f.metadata.get("report")
        }


def _value_type(annotation: Any) -> type:
    """int for ``int`` and ``Optional[int]``, float for ``Sequence[float]``, and so on."""
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    return args[0] if args else annotation


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per field of :class:`ConvertOptions`, from the field's type, default and metadata."""
    hints = typing.get_type_hints(ConvertOptions)
    for f in dataclasses.fields(ConvertOptions):
        meta = f.metadata
        flag = meta.get("flag", f"--{f.name}")
        kind = _value_type(hints[f.name])
        if kind is bool:
            action = "store_false" if f.default else "store_true"
            parser.add_argument(flag, dest=f.name, action=action, help=meta["help"])
            continue
        assert f.default is not dataclasses.MISSING, f"{f.name} has a default"
        default = list(f.default) if meta.get("nargs") else f.default
        shown = f.default not in (None, SOURCE_DEFAULT) and "default" not in meta["help"]
        help_text = meta["help"] + (" (default: %(default)s)" if shown else "")
        extra = {k: meta[k] for k in ("nargs", "metavar") if k in meta}
        if "choices" in meta:
            extra["choices"] = list(meta["choices"]())
        parser.add_argument(flag, dest=f.name, type=kind, default=default, help=help_text, **extra)


def from_args(args: argparse.Namespace) -> ConvertOptions:
    """The :class:`ConvertOptions` of parsed flags (made by :func:`add_arguments`)."""
    values = {}
    for f in dataclasses.fields(ConvertOptions):
        value = getattr(args, f.name)
        if f.metadata.get("nargs"):
            value = tuple(value)
        if f.metadata.get("empty_is_none") and value == "":
            value = None
        values[f.name] = value
    return ConvertOptions(**values)
