"""Hardening of the Google Local converter: each test reproduces a way the converter used to fail
(a traceback, a dataset RecBole cannot read, a silent data-quality trap, a misleading message)."""

from __future__ import annotations

import gzip
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from recbole_dlrrec.cli import convert as cli_convert
from recbole_dlrrec.data import google_local as gl
from recbole_dlrrec.data.encoder import HashEncoder
from recbole_dlrrec.errors import InputError

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
REVIEWS = os.path.join(FIXTURES, "reviews_small.json")
META = os.path.join(FIXTURES, "meta_small.json")
NO_INPUT = "/nonexistent/never-read.json"


def lines_of(path):
    with open(path, encoding="utf-8") as handle:
        return handle.read().splitlines()


def write_lines(path, lines):
    with open(path, "w", encoding="utf-8") as handle:
        for line in lines:
            handle.write((line if isinstance(line, str) else json.dumps(line)) + "\n")
    return str(path)


def run(tmp_path, reviews=REVIEWS, meta=META, name="tiny", **kwargs):
    kwargs.setdefault("encoder", HashEncoder())
    kwargs.setdefault("show_progress", False)
    out = str(tmp_path / "out")
    return gl.convert(reviews, meta, name, out, **kwargs), os.path.join(out, name)


def read(folder, name):
    with open(os.path.join(folder, name), encoding="utf-8") as handle:
        return handle.read()


def good_meta(tmp_path):
    return write_lines(tmp_path / "meta_ok.json", [l for i, l in enumerate(lines_of(META), 1) if i not in (6, 7)])


# -- ids RecBole cannot read back ----------------------------------------------------------------
def test_ids_recbole_cannot_read_back_are_counted_and_the_dataset_loads(tmp_path):
    reviews = [json.loads(l) for l in lines_of(REVIEWS)[:12]]
    extra = []
    for user in ('"quoted', 'say"hi"', "NA", "null", "bell\u0007"):
        extra.append(dict(reviews[0], user_id=user, time=reviews[0]["time"] + 1))
    meta = [json.loads(l) for l in lines_of(META)[:3]]
    meta[0]["category"] = ['Bar "The Best"', "Italian restaurant", "NA restaurant"]
    meta.append(dict(meta[1], gmap_id='0x11:"q"'))
    report, folder = run(
        tmp_path, reviews=write_lines(tmp_path / "r.json", reviews + extra), meta=write_lines(tmp_path / "m.json", meta)
    )
    assert report["reviews"]["dropped"]["invalid_value:user_id"] == 5
    assert report["meta"]["dropped"]["invalid_value:gmap_id"] == 1
    assert report["meta"]["field_anomalies"]["category_token_unreadable"] == 1  # the quoted one
    assert '"' not in read(folder, "tiny.item")
    counts = gl.check_loads_in_recbole(os.path.dirname(folder), "tiny")
    assert counts["train"] + counts["valid"] + counts["test"] == report["reviews"]["kept"]
    assert counts["users"] == report["totals"]["users"] + 1  # + padding: every user read back


def test_verify_reports_a_dataset_recbole_cannot_load_as_one_line(tmp_path, capsys, monkeypatch):
    original = gl.convert

    def convert_then_damage(*args, **kwargs):
        report = original(*args, **{**kwargs, "encoder": HashEncoder()})
        inter = os.path.join(args[3], args[2], f"{args[2]}.train.inter")
        with open(inter, "a", encoding="utf-8") as handle:  # what an older converter wrote
            handle.write('"u9\t0x11:0xa1\t5\t1\t1600000000000\nu8\t0x11:0xa1\t5\t1\t1600000000000\n')
        return report

    monkeypatch.setattr(gl, "convert", convert_then_damage)
    rc = cli_convert.main(
        ["--reviews", REVIEWS, "--meta", META, "--name", "v", "--out", str(tmp_path), "--quiet", "--verify"]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "RecBole cannot load it" in err and "Traceback" not in err


# -- any bytes: a counted skip or a clean record, never an exception ------------------------------
def test_deeply_nested_line_is_malformed_not_a_crash(tmp_path):
    lines = lines_of(REVIEWS) + ["[" * 100_000]
    path = write_lines(tmp_path / "deep.json", lines)
    report, _ = run(tmp_path, reviews=path)
    assert report["reviews"]["dropped"]["malformed_json"] == 2
    assert report["reviews"]["malformed_lines"] == [17, 21]
    deep_only = write_lines(tmp_path / "deep_only.json", lines[:12] + ["[" * 100_000])
    with pytest.raises(gl.ConversionError, match=r"deep_only\.json:13: malformed JSON \(nested too deeply\)"):
        run(tmp_path, reviews=deep_only, meta=good_meta(tmp_path), strict=True)


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)
KEYS = [
    "user_id",
    "gmap_id",
    "time",
    "rating",
    "text",
    "pics",
    "name",
    "category",
    "price",
    "MISC",
    "latitude",
    "description",
    "avg_rating",
]
OBJECTS = st.dictionaries(st.sampled_from(KEYS), JSON_VALUES, max_size=len(KEYS))


def _check_line(raw: bytes) -> None:
    from collections import Counter

    parsed = gl.parse_line(raw, 1)
    if isinstance(parsed, gl.Skip):
        assert parsed.reason in ("blank_line", "malformed_json", "not_an_object")
        return
    assert isinstance(parsed, dict)
    for result in (
        gl.parse_review(parsed, 1, Counter(), Counter(), keep_pic_urls=True),
        gl.parse_meta(parsed, Counter()),
    ):
        assert isinstance(result, (gl.Skip, gl.Review, gl.Business))
        if isinstance(result, gl.Review):
            assert gl.readable_token(result.user) and gl.readable_token(result.item)
            assert gl.read.TIME_MS_MIN <= result.time < gl.read.TIME_MS_MAX and 1 <= result.rating <= 5


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=200))
def test_fuzz_any_bytes_give_a_skip_or_a_clean_record(raw):
    _check_line(raw)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OBJECTS)
def test_fuzz_any_json_object_gives_a_skip_or_a_clean_record(obj):
    _check_line(json.dumps(obj).encode("utf-8"))


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=60) | OBJECTS.map(lambda o: json.dumps(o).encode("utf-8")), max_size=6))
def test_fuzz_any_file_is_read_or_refused_with_one_line(chunks):
    """A whole file of arbitrary lines: records and a balanced tally, or one ConversionError."""
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "r.json")
        with open(path, "wb") as handle:
            handle.write(b"\n".join(chunks))
        business = gl.Business("0x1", "B", [], "unknown", None, {}, None, None, None, None, {})
        try:
            kept, tally = gl.read_reviews(path, {"0x1": business}, set(), strict=False, show_progress=False)
        except gl.ConversionError as exc:
            assert "\n" not in str(exc)
            return
        tally.check_invariant()
        assert all(isinstance(r, gl.Review) for r in kept)


# -- silent data-quality traps --------------------------------------------------------------------
def test_times_in_seconds_are_converted_row_by_row(tmp_path):
    lines = lines_of(REVIEWS)
    mixed = []
    for i, line in enumerate(lines, 1):
        if i in (1, 3, 5, 12):  # train, train, train, and the test row
            obj = json.loads(line)
            obj["time"] = obj["time"] / 1000
            line = json.dumps(obj)
        mixed.append(line)
    report, folder = run(tmp_path, reviews=write_lines(tmp_path / "mixed.json", mixed))
    _, plain = run(tmp_path / "plain")
    for split in gl.SPLITS:  # exactly what the all-ms file gives: every row lands where it belongs
        assert read(folder, f"tiny.{split}.inter") == read(plain, f"tiny.{split}.inter")
    assert report["reviews"]["converted"] == {"time_seconds_to_ms": 4}
    assert "time_seconds_to_ms 4" in read(folder, "REPORT.md")


@pytest.mark.parametrize("stamp", [1e20, 10**25, 0, -5, 1e9 * 1e3 * 1e3, "1600000000000", 1600000001000.5])
def test_absurd_times_are_dropped_as_invalid(tmp_path, stamp):
    lines = lines_of(REVIEWS)
    obj = json.loads(lines[0])
    obj["time"] = stamp
    lines[0] = json.dumps(obj)
    report, folder = run(tmp_path, reviews=write_lines(tmp_path / "r.json", lines))
    assert report["reviews"]["dropped"]["invalid_value:time"] == 1
    assert "duplicate" not in report["reviews"]["dropped"]  # the line's later twin is kept instead


@pytest.mark.parametrize("threshold", [float("nan"), 5.5, 1, 0.5, float("inf")])
def test_label_threshold_leaving_one_class_is_refused_before_reading(tmp_path, threshold, capsys):
    with pytest.raises(gl.ConversionError, match=r"label_threshold must be in \(1, 5\]"):
        run(tmp_path, reviews=NO_INPUT, label_threshold=threshold)
    rc = cli_convert.main(
        [
            "--reviews",
            NO_INPUT,
            "--meta",
            NO_INPUT,
            "--name",
            "x",
            "--out",
            str(tmp_path),
            "--quiet",
            "--label_threshold",
            str(threshold),
        ]
    )
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "label_threshold" in err


def test_conflicting_duplicate_meta_is_counted_apart_and_the_first_wins(tmp_path):
    meta = lines_of(META)
    conflicting = dict(json.loads(meta[0]), name="Luigi's Other Place", price="$$$$")
    report, folder = run(
        tmp_path,
        meta=write_lines(tmp_path / "m.json", meta + [json.dumps(conflicting)]),
        encoder=(enc := HashEncoder()),
    )
    assert report["meta"]["dropped"]["duplicate"] == 1  # the fixture's exact repeat
    assert report["meta"]["dropped"]["duplicate_conflicting"] == 1
    assert enc.calls[0][0].startswith("Luigi's Trattoria.")
    assert "0x11:0xa1\t$$\t" in read(folder, "tiny.item")
    assert "the first line is kept" in read(folder, "REPORT.md")


# -- messages that say what to do ----------------------------------------------------------------
@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_utf16_file_is_named_as_such(tmp_path, encoding):
    path = tmp_path / "r16.json"
    path.write_bytes(open(REVIEWS, encoding="utf-8").read().encode(encoding))
    with pytest.raises(gl.ConversionError, match=r"r16\.json: looks like UTF-16.*re-encode it as UTF-8"):
        run(tmp_path, reviews=str(path))


def test_errors_are_input_errors():
    assert issubclass(gl.ConversionError, InputError)


# -- the real data's quirks -------------------------------------------------------------------------
@pytest.fixture(scope="module")
def real_with_repeats(tmp_path_factory):
    """The real reviews of the first 40 users who reviewed one (merged chain) business twice or
    more, plus every 60th line: (reviews path, meta path). Skips without the real data."""
    from conftest import REAL_DATA

    reviews = os.path.join(REAL_DATA, "reviews.json.gz")
    meta = os.path.join(REAL_DATA, "meta.json.gz")
    if not (os.path.isfile(reviews) and os.path.isfile(meta)):
        pytest.skip("real Google Local data not found (../shared/data)")
    with gzip.open(reviews, "rt", encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    seen, repeaters = set(), []
    for line in lines:
        obj = json.loads(line)
        pair = (obj["user_id"], obj["gmap_id"])
        if pair in seen and obj["user_id"] not in repeaters:
            repeaters.append(obj["user_id"])
        seen.add(pair)
    chosen = set(repeaters[:40])
    picked = [l for i, l in enumerate(lines, 1) if i % 60 == 0 or json.loads(l)["user_id"] in chosen]
    path = tmp_path_factory.mktemp("real_repeats") / "reviews.json"
    write_lines(path, picked)
    return str(path), meta


def _pairs(folder, name, split):
    return {tuple(l.split("\t")[:2]) for l in read(folder, f"{name}.{split}.inter").splitlines()[1:]}


def test_real_data_repeat_reviews_keep_the_earliest_and_no_pair_spans_splits(tmp_path, real_with_repeats):
    reviews, meta = real_with_repeats
    report, folder = run(tmp_path, reviews=reviews, meta=meta, name="glr", category_filter=None)
    assert report["reviews"]["dropped"]["repeat_user_business"] >= 40
    pairs = [_pairs(folder, "glr", s) for s in gl.SPLITS]
    assert not (pairs[0] & pairs[1]) and not (pairs[0] & pairs[2]) and not (pairs[1] & pairs[2])
    # The kept row is the earliest review of the pair.
    earliest = {}
    with open(reviews, encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            key = (obj["user_id"], obj["gmap_id"])
            earliest[key] = min(earliest.get(key, obj["time"]), obj["time"])
    for split in gl.SPLITS:
        for row in read(folder, f"glr.{split}.inter").splitlines()[1:]:
            user, item, _, _, stamp = row.split("\t")
            assert int(stamp) == earliest[(user, item)]


# -- k-core on the train period ----------------------------------------------------------------------
def _review(user, item, t):
    return gl.Review(t, user, item, 5.0, None, 0, None, t)


def test_k_core_counts_train_rows_only_and_iterates_to_a_fixed_point():
    train = [
        _review("a", "x", 1),
        _review("a", "y", 2),
        _review("b", "x", 3),
        _review("b", "y", 4),
        _review("c", "x", 5),
        _review("c", "z", 6),
    ]  # z has 1 train review -> c drops to 1 -> c goes
    valid = [_review("c", "x", 7), _review("a", "x", 8)]
    test = [_review("d", "x", 9), _review("b", "y", 10), _review("a", "z", 11)]
    future = [_review("c", "z", 12 + i) for i in range(5)]  # lots of future reviews count for nothing
    parts, stats = gl.k_core({"train": train, "valid": valid, "test": test + future}, 2)
    assert [(r.user, r.item) for r in parts["train"]] == [("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")]
    assert [(r.user, r.item) for r in parts["valid"]] == [("a", "x")]
    assert [(r.user, r.item) for r in parts["test"]] == [("b", "y")]
    assert stats["users_dropped"] == 2 and stats["items_dropped"] == 1  # c, d (test only); z
    assert stats["iterations"] == 3 and stats["rows_dropped"] == {"train": 2, "valid": 1, "test": 7}
    again, _ = gl.k_core(parts, 2)
    assert again == parts  # a fixed point


def test_k_core_option_on_generated_data(tmp_path):
    from recbole_dlrrec.data import sample

    reviews, meta = sample.generate(str(tmp_path / "raw"), seed=3, n_restaurants=60, n_users=120, n_reviews=1500)
    report, folder = run(tmp_path, reviews=reviews, meta=meta, name="core", k_core=5)
    core = report["k_core"]
    assert core["k"] == 5 and core["users_dropped"] > 0 and core["iterations"] >= 2
    train = [l.split("\t") for l in read(folder, "core.train.inter").splitlines()[1:]]
    from collections import Counter

    assert min(Counter(r[0] for r in train).values()) >= 5 and min(Counter(r[1] for r in train).values()) >= 5
    users = {r[0] for r in train}
    for split in ("valid", "test"):
        assert {l.split("\t")[0] for l in read(folder, f"core.{split}.inter").splitlines()[1:]} <= users
    assert "## k-core (k = 5" in read(folder, "REPORT.md")
    total = sum(core["rows_dropped"].values())
    assert report["totals"]["interactions"] + total == report["reviews"]["kept"]


# -- one label (issue 25 item 7) ----------------------------------------------------------------
def test_input_with_one_label_is_refused_in_one_line(tmp_path, capsys):
    """Every review 5 stars: no negative row anywhere; it used to convert ("48.00:1")."""
    five = write_lines(
        tmp_path / "r.json", [l.replace('"rating": ', '"rating": 5, "was": ') for l in lines_of(REVIEWS)]
    )
    out = tmp_path / "out"
    rc = cli_convert.main(["--quiet", "--reviews", five, "--meta", META, "--name", "fives", "--out", str(out)])
    err = capsys.readouterr().err
    assert rc == 2 and err.count("\n") == 1 and "r.json" in err and "has label 1" in err and "both labels" in err
    assert not os.path.exists(out / "fives")


def test_a_split_with_one_label_is_a_loud_report_warning(tmp_path):
    """The small fixture's valid split is one positive row: written, with a warning that training
    refuses that split (runtime/quick_start.check_both_labels)."""
    report, folder = run(tmp_path)
    assert report["splits"]["valid"]["negatives"] == 0
    assert any(w.startswith("the valid split has 1 row(s), all with label 1") for w in report["warnings"])
    assert "**WARNING: the valid split has 1 row(s), all with label 1" in read(folder, "REPORT.md")


# -- huge lines (issue 25 item 8) ------------------------------------------------------------------
def _review_line_of(n_bytes):
    """A valid review line (matching the small fixture's business) of exactly ``n_bytes`` bytes."""
    base = dict(json.loads(lines_of(REVIEWS)[0]), user_id="huge", time=1600000000500, text="")
    pad = n_bytes - len(json.dumps(base))
    return json.dumps(dict(base, text="x" * pad))


def test_a_line_over_max_line_bytes_is_a_counted_skip_naming_it(tmp_path):
    lines = lines_of(REVIEWS)
    lines.insert(3, _review_line_of(5000))  # line 4
    reviews = write_lines(tmp_path / "r.json", lines)
    report, folder = run(tmp_path, reviews=reviews, meta=good_meta(tmp_path), max_line_bytes=1000)
    tally = report["reviews"]
    assert tally["dropped"]["line_too_long"] == 1 and tally["long_lines"] == [4]
    assert tally["lines_read"] == tally["kept"] + tally["dropped_total"]
    assert report["params"]["max_line_bytes"] == 1000
    assert "Lines over max_line_bytes=1000 (skipped unread): 4" in read(folder, "REPORT.md")
    # A line of exactly the cap is read; --strict makes a longer one fatal, naming file:line.
    lines[3] = _review_line_of(1000)
    at_cap, _ = run(
        tmp_path, reviews=write_lines(tmp_path / "r.json", lines), meta=good_meta(tmp_path), max_line_bytes=1000
    )
    assert "line_too_long" not in at_cap["reviews"]["dropped"]
    lines[3] = _review_line_of(1001)
    with pytest.raises(gl.ConversionError, match=r"r\.json:4: line of 1001 bytes is longer than max_line_bytes=1000"):
        run(
            tmp_path,
            reviews=write_lines(tmp_path / "r.json", lines),
            meta=good_meta(tmp_path),
            max_line_bytes=1000,
            strict=True,
        )


@pytest.mark.parametrize("gz", [False, True])
def test_a_huge_line_is_never_held_in_memory(tmp_path, gz):
    """A 16 MB review line used to be read whole and parsed (27x its size at the peak); now
    reading it holds about the cap (1 MiB by default), plain or gzip."""
    import tracemalloc

    lines = lines_of(REVIEWS)
    lines.insert(0, _review_line_of(16 << 20))
    path = str(tmp_path / ("r.json.gz" if gz else "r.json"))
    with gzip.open(path, "wt", encoding="utf-8") if gz else open(path, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    meta = good_meta(tmp_path)
    businesses, filtered, _ = gl.read_meta(meta, None, False, False)
    tracemalloc.start()
    try:
        kept, tally = gl.read_reviews(path, businesses, filtered, False, False)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert tally.dropped["line_too_long"] == 1 and tally.long_lines == [1] and kept
    assert peak < 4 * gl.DEFAULT_MAX_LINE_BYTES


# -- the command line (issue 25 item 8) -------------------------------------------------------------
def test_ctrl_c_in_convert_is_one_line_and_exit_130(tmp_path, capsys, monkeypatch):
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(gl, "convert", interrupted)
    try:
        rc = cli_convert.main(["--quiet", "--reviews", REVIEWS, "--meta", META, "--name", "x", "--out", str(tmp_path)])
    except KeyboardInterrupt:
        pytest.fail("Ctrl-C escaped main() (a traceback)")
    err = capsys.readouterr().err
    assert rc == 130 and err.count("\n") == 1 and err.startswith("interrupted")


def test_help_names_the_command_it_was_run_as(capsys):
    from recbole_dlrrec.cli.main import main

    with pytest.raises(SystemExit) as done:
        main(["convert", "--help"])  # the one spelling; the converter has no `python -m` module of its own
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("usage: recbole-dlrrec convert ")
