"""benchmarks/bench_convert_data.py: the generated Google-Local-shaped input at a few hundred lines."""

from __future__ import annotations

import gzip
import json
import os
import sys

import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))

import bench_convert_data as data  # noqa: E402


def _reviews(path: str) -> list[dict]:
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def test_texts_take_their_lengths_from_the_given_ones(tmp_path):
    lengths = np.array([25, 140, 900])
    reviews, meta = data.generate(str(tmp_path), 400, seed=1, lengths=lengths)
    rows = _reviews(reviews)
    assert len(rows) == 400
    texts = [r["text"] for r in rows if r["text"]]
    assert {len(t) for t in texts} == {25, 140, 900}
    assert 0.5 < len(texts) / len(rows) < 0.8  # TEXT_SHARE 0.65
    gmap = {json.loads(line)["gmap_id"] for line in gzip.open(meta, "rt", encoding="utf-8")}
    assert len(gmap) == 20 and sum(r["gmap_id"] in gmap for r in rows) > 380  # ~1% review unknown places


def test_a_second_call_reuses_the_files_and_other_lengths_remake_them(tmp_path):
    reviews, _ = data.generate(str(tmp_path), 300, lengths=np.array([30]))
    first = os.path.getmtime(reviews)
    assert data.generate(str(tmp_path), 300, lengths=np.array([30]))[0] == reviews
    assert os.path.getmtime(reviews) == first
    data.generate(str(tmp_path), 300, lengths=np.array([31]))
    assert {len(r["text"]) for r in _reviews(reviews) if r["text"]} == {31}


def test_skew_and_profile_measure_what_was_generated(tmp_path):
    assert data.skew(np.array([0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 91])) == pytest.approx(
        {"n": 10, "per": 10.0, "median": 1.0, "top1": 0.91, "top10": 0.91}
    )
    reviews, _ = data.generate(str(tmp_path), 600, seed=2, lengths=np.array([50, 60]))
    made = data.profile(reviews)
    assert made["lines"] == 600 and set(made["lengths"].tolist()) <= {50, 60}
    assert made["users"]["top10"] > 0.15 and made["items"]["top10"] > 0.3  # a few very active users, popular places
    assert data.profile(reviews, max_lines=100)["lines"] == 100


@pytest.mark.slow
def test_the_converter_reads_the_generated_files(tmp_path):
    from recbole_dlrrec.data import google_local as gl
    from recbole_dlrrec.data.encoder import HashEncoder

    reviews, meta = data.generate(str(tmp_path / "raw"), 600, seed=3)
    report = gl.convert(reviews, meta, "gen", str(tmp_path / "out"), encoder=HashEncoder(8), show_progress=False)
    dropped = report["reviews"]["dropped"]
    assert report["reviews"]["kept"] > 100 and dropped["business_not_matching_category"] > 0
    assert report["totals"]["positives"] and report["totals"]["negatives"]
