"""Which regularisers each tuned model's search covers: a page the search spaces are checked by.

    python -m recbole_dlrrec.experiments.space_audit --out results/search_spaces.md [--results results]

A tuned board is only fair when every model's search may turn the knobs that hold it back. The
regularisers a model applies are read from its source, not listed by hand: every quoted config
key whose name says regulariser (`reg_weight`, `weight_decay`, `*dropout*`, `*l2*`) in the source
of each class of the model (for RecBole's models, each class of its MRO; for the plugin's, the
whole module of each class, and the fields of its typed options object), plus
`weight_decay`, which RecBole's Trainer hands to every model's optimizer. Each such key is
either searched (in properties/tune/<MODEL>.yaml over shared.yaml) or listed in
DELIBERATELY_FIXED with the reason; `audit` names every key that is neither, and the test of
this module fails on one.

The page has two parts: the spaces (generated from the code and the space files; the test
compares the committed page with them) and the saved searches of the committed tuned boards
(trials per model and board, and whether the search still matches today's space: a changed space
retunes that model on the board's next run).
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import inspect
import json
import os
import re
import sys
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from recbole_dlrrec import atomic
from recbole_dlrrec.errors import EXIT_INPUT_ERROR, InputError
from recbole_dlrrec.experiments.board_cells import TEXT_BASELINE_MODELS

# The models with a space file of their own (variants use their base model's), and the optional
# text-aware baselines (board_cells.TEXT_BASELINE_MODELS), which use their RecBole model's.
TUNED_MODELS = (
    "DLRREC",
    "DLRM",
    "LR",
    "FM",
    "DeepFM",
    "WideDeep",
    "DCNV2",
    "xDeepFM",
    "AutoInt",
    "PNN",
    "DSSM",
    "NFM",
) + TEXT_BASELINE_MODELS
_QUOTED_KEY = re.compile(r"[\"']([a-z][a-z0-9_]*)[\"']")
_REGULARISER_NAME = re.compile(r"reg_weight|weight_decay|dropout|l2")
# RecBole's Trainer passes config["weight_decay"] to every model's optimizer.
TRAINER_REGULARISERS = ("weight_decay",)
# Regularisers a model applies that its search leaves at the config value, and why.
DELIBERATELY_FIXED: Dict[str, Dict[str, str]] = {
    "PNN": {
        "reg_weight": "RecBole's default 0.0 turns PNN's own L2 term off; weight_decay (searched) is the L2 "
        "penalty every model shares"
    },
    "DLRM": {
        "embedding_l2": "off (0.0) for every plugin model; weight_decay (searched) already penalises the embeddings",
        "top_dropout": "off (0.0): dropout_prob (searched) already drops after every hidden layer of both MLPs",
        **{
            key: "read only with oov_embedding, off by default: a board row that switches it on searches it"
            for key in ("id_dropout_user", "id_dropout_item")
        },
    },
    "DLRREC": {
        "embedding_l2": "as DLRM: off, weight_decay is searched",
        "top_dropout": "as DLRM: off, dropout_prob is searched",
        "reduction_dropout": "the text tower's dropout, kept at the DLRREC.yaml value so that the heads' and "
        "the tower's keys do not crowd the 12-key space; dropout_prob is searched",
        "text_dropout": "off (0.0): an input-noise option studied on its own, not part of the method",
        **{
            key: "as DLRM: read only with oov_embedding, off by default"
            for key in ("id_dropout_user", "id_dropout_item")
        },
    },
}
SECTION_SEARCHES = "## Saved searches of the committed tuned boards"


class SpaceAuditError(InputError, ValueError):
    """A results folder or page that cannot be read or written."""


@dataclass(frozen=True)
class ModelAudit:
    """One model: what its search covers and which regularisers its code applies."""

    model: str
    searched: Tuple[str, ...]
    left_out: Tuple[str, ...]  # shared keys the model's file leaves out (`key: ~`)
    regularisers: Tuple[str, ...]
    fixed: Dict[str, str]  # regulariser -> why it is not searched

    @property
    def uncovered(self) -> List[str]:
        """Regularisers neither searched nor listed as deliberately fixed."""
        return [k for k in self.regularisers if k not in self.searched and k not in self.fixed]


def _source_texts(model_class) -> List[str]:
    texts, modules = [], set()
    for klass in model_class.__mro__:
        module = klass.__module__
        if module.startswith("recbole_dlrrec"):
            if module not in modules:  # the plugin reads options through module-level helpers
                modules.add(module)
                texts.append(inspect.getsource(sys.modules[module]))
        elif module.startswith("recbole."):
            texts.append(inspect.getsource(klass))
    return texts


def regulariser_keys(model: str) -> Tuple[str, ...]:
    """The regulariser config keys `model`'s code applies (module doc), sorted."""
    from recbole_dlrrec.config.registry import resolve_model

    model_class, _ = resolve_model(model)
    options = getattr(model_class, "options_class", None)  # the plugin's models: their typed options
    keys = [key for text in _source_texts(model_class) for key in _QUOTED_KEY.findall(text)]
    keys += [field.name for field in dataclasses.fields(options)] if options else []
    found = {key for key in keys if _REGULARISER_NAME.search(key)}
    return tuple(sorted(found | set(TRAINER_REGULARISERS)))


def audit_model(model: str, properties_dir: Optional[str] = None) -> ModelAudit:
    from recbole_dlrrec.config.stack import PROPERTIES_DIR, ConfigStack
    from recbole_dlrrec.experiments.tune_space import model_space

    stack = ConfigStack(model, None, (), {})
    space = model_space(model, properties_dir or PROPERTIES_DIR, stack.plugin_files())
    regularisers = regulariser_keys(model)
    fixed = {k: why for k, why in DELIBERATELY_FIXED.get(model, {}).items() if k in regularisers}
    return ModelAudit(model, tuple(space.keys), tuple(sorted(space.left_out)), regularisers, fixed)


def audit(models: Sequence[str] = TUNED_MODELS) -> List[ModelAudit]:
    return [audit_model(model) for model in models]


def spaces_markdown(audits: Sequence[ModelAudit]) -> str:
    """The generated part of the page: one row per model."""
    lines = [
        "# Search spaces and regularisers of the tuned boards",
        "",
        "Generated by `python -m recbole_dlrrec.experiments.space_audit --out results/search_spaces.md`; "
        "a test fails when this part differs from the code and `properties/tune/`, or when a model applies a "
        "regulariser that is neither searched nor listed below as deliberately fixed.",
        "",
        "Regularisers are read from each model's source: every config key named like `reg_weight`, "
        "`weight_decay`, `*dropout*` or `*l2*` that the model's classes read, and `weight_decay`, which "
        "RecBole's Trainer gives every model's optimizer. Every model gets the same number of trials on a board "
        "(`run_leaderboard.py --tune N`); the keys below are what those trials draw.",
        "",
        "| Model | Keys searched | Left out of shared.yaml | Regularisers searched | Regularisers fixed (why) |",
        "|---|---|---|---|---|",
    ]
    for a in audits:
        searched = [k for k in a.regularisers if k in a.searched]
        fixed = "; ".join(f"`{k}`: {why}" for k, why in sorted(a.fixed.items()))
        uncovered = "; ".join(f"`{k}`: NOT SEARCHED, NO REASON" for k in a.uncovered)
        lines.append(
            f"| {a.model} | {len(a.searched)}: {', '.join(f'`{k}`' for k in a.searched)} | "
            f"{', '.join(f'`{k}`' for k in a.left_out) or 'none'} | "
            f"{', '.join(f'`{k}`' for k in searched) or 'none'} | "
            f"{'; '.join(x for x in (fixed, uncovered) if x) or 'none'} |"
        )
    return "\n".join(lines) + "\n"


def _space_now(model: str) -> Optional[dict]:
    from recbole_dlrrec.config.stack import PROPERTIES_DIR, ConfigStack
    from recbole_dlrrec.experiments.tune_space import model_space

    try:
        return model_space(model, PROPERTIES_DIR, ConfigStack(model, None, (), {}).plugin_files()).to_dict()
    except InputError:
        return None


def searches_markdown(results_dir: str) -> str:
    """Trials of every saved search under results/*-tuned/tuning/, and whether today's space
    still matches it."""
    lines = [
        SECTION_SEARCHES,
        "",
        "Trials drawn per model (completed / pruned / failed); 'stale' marks a search whose space differs "
        "from today's `properties/tune/` (that model is searched again on the board's next run).",
        "",
    ]
    boards = sorted(
        p for p in glob.glob(os.path.join(results_dir, "*-tuned")) if os.path.isdir(os.path.join(p, "tuning"))
    )
    if not boards:
        return "\n".join(lines + ["No tuned board under this results folder.", ""])
    records: Dict[str, Dict[str, dict]] = {}
    for board in boards:
        for path in sorted(glob.glob(os.path.join(board, "tuning", "*", "tuning.json"))):
            try:
                with open(path, encoding="utf-8") as handle:
                    record = json.load(handle)
            except (OSError, json.JSONDecodeError) as exc:
                raise SpaceAuditError(f"{path}: cannot be read ({exc})") from None
            records.setdefault(os.path.basename(os.path.dirname(path)), {})[os.path.basename(board)] = record
    names = [os.path.basename(b) for b in boards]
    lines += ["| Model | " + " | ".join(names) + " |", "|---|" + "---|" * len(names)]
    spaces = {model: _space_now(model) for model in records}
    for model in sorted(records):
        cells = []
        for name in names:
            record = records[model].get(name)
            if not record:
                cells.append("")
                continue
            counts = record.get("trial_counts") or {}
            text = (
                f"{(record.get('inputs') or {}).get('trials', '?')} ({counts.get('completed', 0)}/"
                f"{counts.get('pruned', 0)}/{counts.get('failed', 0)})"
            )
            if record.get("status") != "ok":
                text += " failed"
            elif spaces[model] is not None and (record.get("inputs") or {}).get("space") != spaces[model]:
                text += " stale"
            cells.append(text)
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def page(results_dir: str, models: Sequence[str] = TUNED_MODELS) -> str:
    return spaces_markdown(audit(models)) + "\n" + searches_markdown(results_dir)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m recbole_dlrrec.experiments.space_audit", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", required=True, help="the Markdown page to write (e.g. results/search_spaces.md)")
    parser.add_argument("--results", default="results", help="where the tuned boards are (default: results)")
    args = parser.parse_args(argv)
    try:
        text = page(args.results)
        atomic.write_text(args.out, text)
    except InputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT_ERROR
    uncovered = [f"{a.model}: {k}" for a in audit() for k in a.uncovered]
    print(args.out)
    if uncovered:
        print("regularisers neither searched nor deliberately fixed: " + ", ".join(uncovered), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
