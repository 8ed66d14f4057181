"""SWING audit: the summary (swing/audit.py) and the CLI that builds or loads a dataset's cache
(cli/swing.py, ``recbole-dlrrec swing``), with a stand-in for RecBole's Config and Dataset."""

import os
import sys
import types

import numpy as np
import pytest
from swing_reference import FakeDataset, fake_config

from recbole_dlrrec.cli import swing as swing_cli
from recbole_dlrrec.errors import InputError
from recbole_dlrrec.swing.audit import neighbour_agreement, summarize
from recbole_dlrrec.swing.graph import NeighbourTable, SwingNeighbours


@pytest.fixture
def fake_runtime(tmp_path, monkeypatch):
    """Replaces runtime.quick_start by a stand-in; returns what build_config was called with."""
    dataset = FakeDataset()
    seen = {}

    def build_config(model, dataset_name, config_file_list=None, config_dict=None):
        if dataset_name == "missing":
            raise InputError("dataset 'missing' not found")
        seen.update(model=model, files=config_file_list, overrides=config_dict)
        return fake_config(tmp_path, dataset=dataset_name, **(config_dict or {}))

    def load_splits(config):
        return None, types.SimpleNamespace(dataset=dataset), None, None

    fake_module = types.ModuleType("recbole_dlrrec.runtime.quick_start")
    fake_module.build_config = build_config
    fake_module.load_splits = load_splits
    monkeypatch.setitem(sys.modules, "recbole_dlrrec.runtime.quick_start", fake_module)
    return seen


@pytest.mark.slow
def test_cli_builds_then_loads_and_plots(fake_runtime, capsys):
    args = swing_cli.parse_args(["--dataset=fake", "--topk", "3", "--config_files", "a.yaml b.yaml"])
    first = swing_cli.audit(args)
    out = capsys.readouterr().out
    assert fake_runtime == {"model": "DLRREC", "files": ["a.yaml", "b.yaml"], "overrides": {"swing_topk": 3}}
    assert "computed" in out and "items:" in out and "users:" in out
    assert os.path.isfile(first["histogram"]) and first["histogram"].endswith(".png")
    assert os.path.dirname(first["histogram"]) == os.path.dirname(first["cache"])
    assert first["summary"]["items"]["with_neighbours"] == 3  # items 1, 2, 3
    assert swing_cli.main(["--dataset=fake", "--topk", "3"]) == 0
    assert "loaded swing cache" in capsys.readouterr().out


def test_cli_input_error_is_one_line_and_exit_2(fake_runtime, capsys):
    assert swing_cli.main(["--dataset=missing"]) == 2
    captured = capsys.readouterr()
    assert captured.err == "error: dataset 'missing' not found\n"


def test_summarize_counts_and_quantiles():
    items = NeighbourTable(
        ids=np.array([[-1, -1], [2, -1], [1, 0]]),
        scores=np.array([[0.0, 0.0], [0.5, 0.0], [0.5, 0.25]]),
        counts=np.array([0, 1, 2]),
    )
    users = NeighbourTable(ids=np.full((2, 1), -1), scores=np.zeros((2, 1)), counts=np.zeros(2))
    summary = summarize(SwingNeighbours(users=users, items=items))
    assert summary["items"]["nodes"] == 3 and summary["items"]["with_neighbours"] == 2
    assert summary["items"]["mean_neighbours"] == 1.5
    quantiles = summary["items"]["score_quantiles"]
    assert quantiles["q0"] == 0.25 and quantiles["q100"] == 0.5 and quantiles["q50"] == 0.5
    assert summary["users"] == {"nodes": 2, "with_neighbours": 0, "mean_neighbours": 0.0, "score_quantiles": {}}


def test_neighbour_agreement_counts_categories_and_text():
    # ids 1..4; 1 -> [2, 3], 2 -> [1], 4 -> [1]; categories a a b (none); vectors: 3 has none.
    table = NeighbourTable(
        ids=np.array([[-1, -1], [2, 3], [1, -1], [-1, -1], [1, -1]]),
        scores=np.ones((5, 2)),
        counts=np.array([0, 2, 1, 0, 1]),
    )
    categories = np.array(["(none)", "a", "a", "b", "(none)"], dtype=object)
    vectors = np.array([[0, 0], [1, 0], [1, 1], [0, 0], [0, 1]], dtype=float)
    result = neighbour_agreement(table, categories, vectors)
    assert result["pairs"] == 4
    assert result["same_category"] == pytest.approx(2 / 3)  # (1,2) (1,3) (2,1); 4 is unknown
    assert result["same_category_chance"] == pytest.approx((2 / 3) ** 2 + (1 / 3) ** 2)
    # Pairs with text: (1,2) (2,1) (4,1): cosines 1/sqrt2, 1/sqrt2, 0.
    assert result["text_cosine"] == pytest.approx(2**0.5 / 3)
    # Random pairs of distinct ids with text (1, 2, 4): (1/sqrt2 + 0 + 1/sqrt2) / 3.
    assert result["text_cosine_random"] == pytest.approx(2**0.5 / 3)
    assert set(neighbour_agreement(table)) == {"pairs"}


@pytest.mark.slow
def test_cli_compare_audits_every_similarity(fake_runtime, capsys):
    result = swing_cli.audit(swing_cli.parse_args(["--dataset=fake", "--similarity", "jaccard", "--compare"]))
    assert fake_runtime["overrides"] == {"cl_similarity": "jaccard"}
    assert os.path.basename(result["cache"]).startswith("jaccard_")
    rows = result["agreement"]
    assert [(r["similarity"], r["side"]) for r in rows] == [
        (s, side) for s in ("swing", "itemcf_cosine", "jaccard") for side in ("user", "item")
    ]
    assert all(r["pairs"] > 0 for r in rows)
    assert "neighbour pairs" in capsys.readouterr().out
