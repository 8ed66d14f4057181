"""The docs site's results pages: built from the committed board files, never by hand, and written
only into a folder the tool owns."""

from __future__ import annotations

import json
import os

import pytest

from recbole_dlrrec.experiments import docs_results

LEADERBOARD = """# Tuned leaderboard: toy

- Machine: a test.

| Model | Test AUC |
|---|---|
| DLRREC | 0.7 |

## Significance (DLRREC family vs the best baseline)

| Model | Δ AUC |
|---|---|
| DLRREC | +0.01 |
"""


def _write(path, text="x", mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as handle:
        handle.write(text)


@pytest.fixture
def results(tmp_path):
    root = tmp_path / "results"
    _write(str(root / "toy-tuned" / "leaderboard.md"), LEADERBOARD)
    _write(str(root / "toy-tuned" / "significance.md"), "# Significance: toy\n\n| Model |\n|---|\n| DLRREC |\n")
    _write(str(root / "toy-tuned" / "leaderboard_auc.png"), b"\x89PNG chart", "wb")
    _write(str(root / "toy-tuned" / "cells" / "DLRREC-seed2020.json"), "{}")
    _write(str(root / "toy-tuned" / "tuning" / "DLRREC" / "trials.png"), b"\x89PNG", "wb")
    _write(str(root / "old" / "leaderboard.md"), "# Leaderboard: old\n\n| Model |\n|---|\n| FM |\n")
    _write(str(root / "old" / "significance.md"), "# Significance: old\n\n| Model |\n|---|\n| DLRREC |\n")
    _write(str(root / "old" / "swing_audit.md"), "# SWING audit: old\n\n## Summary\n\ntext\n")
    _write(str(root / "old" / "swing_hist.png"), b"\x89PNG hist", "wb")
    _write(str(root / "old" / "tsne_items.png"), b"\x89PNG tsne", "wb")
    _write(str(root / "bench" / "cpu.txt"), "machine: AMD\n```\nrun  samples/s\n")
    _write(str(root / "defaults.md"), "# Defaults chosen on validation\n\n| Rank |\n|---|\n| 1 |\n")
    return str(root)


def _page(out, slug):
    with open(os.path.join(out, slug, "index.md"), encoding="utf-8") as handle:
        return handle.read()


def test_every_report_folder_and_top_level_table_is_a_page_records_are_not(results, tmp_path):
    out = str(tmp_path / "out")
    written = docs_results.build(results, out)
    assert sorted(f for f in written if f.endswith("index.md")) == [
        "bench/index.md",
        "defaults/index.md",
        "index.md",
        "old/index.md",
        "toy-tuned/index.md",
    ]
    assert not any("cells" in f or "tuning" in f for f in written)
    with open(os.path.join(out, "index.md"), encoding="utf-8") as handle:
        index = handle.read()
    assert "| [toy-tuned](toy-tuned/index.md) | Tuned leaderboard: toy | `results/toy-tuned/` |" in index
    assert "| [defaults](defaults/index.md) | Defaults chosen on validation | `results/defaults.md` |" in index


def test_page_keeps_the_board_text_and_skips_a_significance_file_the_leaderboard_already_holds(results, tmp_path):
    out = str(tmp_path / "out")
    docs_results.build(results, out)
    page = _page(out, "toy-tuned")
    assert page.startswith(LEADERBOARD.rstrip())
    assert "# Significance: toy" not in page
    assert page.index("| DLRREC | 0.7 |") < page.index("![leaderboard_auc.png](leaderboard_auc.png)")
    with open(os.path.join(out, "toy-tuned", "leaderboard_auc.png"), "rb") as handle:
        assert handle.read() == b"\x89PNG chart"


def test_other_tables_sit_under_the_page_title_with_their_charts(results, tmp_path):
    out = str(tmp_path / "out")
    docs_results.build(results, out)
    page = _page(out, "old")
    assert page.startswith("# Leaderboard: old")
    # significance.md is included here (the leaderboard lacks its tables), one level down
    assert "\n## Significance: old\n" in page and "\n## SWING audit: old\n" in page and "\n### Summary\n" in page
    assert page.index("## SWING audit") < page.index("![swing_hist.png](swing_hist.png)") < page.index("## Charts")
    assert page.index("## Charts") < page.index("![tsne_items.png](tsne_items.png)")


def test_text_logs_are_fenced_longer_than_any_fence_inside(results, tmp_path):
    out = str(tmp_path / "out")
    docs_results.build(results, out)
    page = _page(out, "bench")
    assert page.startswith("# Results: bench")
    assert "## cpu.txt\n\n````text\nmachine: AMD\n```\nrun  samples/s\n````" in page


def test_rerun_replaces_its_own_files_and_removes_what_no_longer_exists(results, tmp_path):
    out = str(tmp_path / "out")
    docs_results.build(results, out)
    os.remove(os.path.join(results, "old", "tsne_items.png"))
    written = docs_results.build(results, out)
    assert not os.path.exists(os.path.join(out, "old", "tsne_items.png"))
    with open(os.path.join(out, docs_results.MANIFEST), encoding="utf-8") as handle:
        assert json.load(handle)["files"] == written


def test_refuses_a_folder_it_did_not_write(results, tmp_path):
    out = tmp_path / "out"
    _write(str(out / "notes.md"), "mine")
    with pytest.raises(docs_results.DocsResultsError, match="not written by docs_results"):
        docs_results.build(results, str(out))
    assert (out / "notes.md").read_text() == "mine"


def test_a_table_and_a_folder_of_the_same_name_are_refused(results, tmp_path):
    _write(os.path.join(results, "old.md"), "# Old\n")
    with pytest.raises(docs_results.DocsResultsError, match="old.md and the folder old/"):
        docs_results.build(results, str(tmp_path / "out"))


def test_cli_one_line_and_exit_2_on_a_missing_results_folder(tmp_path, capsys):
    assert docs_results.main(["--results", str(tmp_path / "none"), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no such results folder" in err
    assert not os.path.exists(tmp_path / "out")


def test_the_committed_results_make_pages():
    """The repository's own results/ (what `make docs` reads) gives a page per board."""
    root = os.path.join(os.path.dirname(__file__), os.pardir, os.pardir, "results")
    slugs = {page.slug for page in docs_results.find_pages(root)}
    assert {"ml-100k-tuned", "google-local-hi-ms-tuned", "dlrrec-defaults"} <= slugs
