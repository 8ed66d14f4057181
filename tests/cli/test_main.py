"""`recbole-dlrrec SUBCOMMAND`: the dispatcher reaches each tool's own main."""

from __future__ import annotations

import os

import pytest

from recbole_dlrrec.cli.main import COMMANDS, main

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_each_subcommand_has_its_own_help(name, capsys):
    with pytest.raises(SystemExit) as stop:
        main([name, "--help"])
    assert stop.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: recbole-dlrrec {name} ") and "--help" in out  # one spelling per command


def test_convert_reports_bad_input_in_one_line(tmp_path, capsys):
    missing = str(tmp_path / "no_such_reviews.json")
    status = main(
        [
            "convert",
            "--reviews",
            missing,
            "--meta",
            os.path.join(FIXTURES, "meta_small.json"),
            "--name",
            "x",
            "--out",
            str(tmp_path / "out"),
            "--quiet",
        ]
    )
    assert status == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "no_such_reviews.json" in err[0]
    assert not os.path.exists(tmp_path / "out" / "x")


def test_swing_unknown_dataset_is_one_line(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(["swing", "--dataset", "no_such_data"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and "unknown dataset 'no_such_data'" in err[0]


@pytest.mark.slow
def test_swing_audits_a_dataset(tiny_data_path, tmp_path, capsys, monkeypatch):
    settings = tmp_path / "tiny_path.yaml"
    settings.write_text(f"data_path: {tiny_data_path}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["swing", "--dataset", "tiny", "--config_files", str(settings)]) == 0
    out = capsys.readouterr().out
    # Named after what it audits: DLRREC's default cl_similarity (jaccard), not SWING.
    assert "jaccard neighbours for dataset tiny" in out and "SWING" not in out and "histogram:" in out
    assert os.path.basename(out.split("cache ")[1].split()[0]).startswith("jaccard_")
    assert main(["swing", "--dataset", "tiny", "--config_files", str(settings), "--similarity", "swing"]) == 0
    assert "swing neighbours for dataset tiny" in capsys.readouterr().out
