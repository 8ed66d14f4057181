"""Searches that do not pick by timing (scheduler none): the trial set is drawn from the seed up
front, every trial trains alike, and the winner does not change when the trials run in another
order."""

from __future__ import annotations

import csv
import json
import os

import pytest

from recbole_dlrrec.experiments import ray_backend, search_records, tune, tune_request
from recbole_dlrrec.experiments.tune_space import Param, SearchSpace

SPACE = (
    "learning_rate: {loguniform: [0.0005, 0.05]}\n"
    "embedding_size: {choice: [4, 8, 16]}\n"
    "dropout_prob: {quniform: [0.0, 0.3, 0.1]}\n"
)
# For the search itself: a list-valued key too (Ray's own preset configurations cannot hold lists).
SEARCH_SPACE = SPACE + "top_mlp: {choice: [[16], [32, 16]]}\n"


def _space_file(tmp_path, text=SPACE):
    path = tmp_path / "space.yaml"
    path.write_text(text)
    return str(path)


def _dlrm_space(tmp_path):
    """SPACE as parse_space reads it (built directly: parsing imports the config stack, seconds)."""
    params = [
        Param("learning_rate", "loguniform", (0.0005, 0.05)),
        Param("embedding_size", "choice", (4, 8, 16), as_int=True),
        Param("dropout_prob", "quniform", (0.0, 0.3, 0.1)),
    ]
    return SearchSpace(_space_file(tmp_path), {p.key: p for p in params})


def test_draws_are_a_function_of_space_seed_and_count(tmp_path):
    space = _dlrm_space(tmp_path)
    first = space.draws(6, seed=11)
    assert first == space.draws(6, seed=11)  # same seed, same trial set
    assert space.draws(4, seed=11) == first[:4]  # a larger count extends it, never reshuffles it
    assert first != space.draws(6, seed=12)
    for params in first:
        assert list(params) == sorted(params)
        assert 0.0005 <= params["learning_rate"] <= 0.05
        assert params["embedding_size"] in (4, 8, 16) and isinstance(params["embedding_size"], int)
        tenths = params["dropout_prob"] * 10
        assert 0 <= params["dropout_prob"] <= 0.3 and abs(tenths - round(tenths)) < 1e-9
    json.dumps(first)  # plain values: they go into run_spec.json
    # a space that shares a key's range draws the same values of it (every model tries the same rates)
    narrower = space.without(["embedding_size"], "fixed by the variant")
    assert [p["learning_rate"] for p in narrower.draws(6, seed=11)] == [p["learning_rate"] for p in first]


def test_records_in_draw_order_break_ties_by_the_earlier_draw():
    draws = [{"a": 1}, {"a": 2}, {"a": 3}]
    make = search_records.TrialRecord
    # finished in another order, two tied on the best score
    records = [make("t0", "completed", {"a": 3}, best_score=0.7), make("t1", "completed", {"a": 2}, best_score=0.7)]
    records.append(make("t2", "completed", {"a": 1}, best_score=0.6))
    ordered = search_records.in_draw_order(records, draws)
    assert [r.params["a"] for r in ordered] == [1, 2, 3]
    assert search_records.select_best(ordered, bigger=True).params == {"a": 2}


def test_a_bad_scheduler_is_refused_in_one_line():
    request = tune.TuneRequest(model="DLRM", dataset="tiny", num_samples=2, scheduler="hyperband")
    with pytest.raises(search_records.TuneRunError, match="--search_scheduler=hyperband: choose one of none, asha"):
        tune_request.new_request(request)


def _search(tmp_path, tiny_data_path, name):
    return tune.run_search(
        tune.TuneRequest(
            model="DLRM",
            dataset="tiny",
            num_samples=3,
            max_epochs=2,
            space_file=_space_file(tmp_path, SEARCH_SPACE),
            seed=5,
            fixed={"data_path": tiny_data_path, "show_progress": False},
            out_root=str(tmp_path / "out"),
            name=name,
            num_cpus=1,
            evaluate_best=False,
            scheduler="none",
        )
    )


def _scores(outcome):
    return [(search_records.params_key(r.params), r.status, r.epochs, r.best_score) for r in outcome.trials]


@pytest.mark.slow
def test_the_winner_does_not_change_when_the_trial_order_changes(tmp_path, tiny_data_path, monkeypatch):
    """The same three drawn configurations, started in draw order and then in reverse: every
    trial trains to the cap, the records (in draw order) and the winner are the same."""
    forward = _search(tmp_path, tiny_data_path, "forward")
    monkeypatch.setattr(ray_backend, "trial_order", lambda count: list(reversed(range(count))))
    backward = _search(tmp_path, tiny_data_path, "backward")

    spec = json.load(open(os.path.join(forward.out_dir, "run_spec.json")))
    assert spec["scheduler"] == "none" and len(spec["draws"]) == 3
    assert spec["draws"] == json.load(open(os.path.join(backward.out_dir, "run_spec.json")))["draws"]
    draws = [search_records.params_key(p) for p in spec["draws"]]
    assert [s[0] for s in _scores(forward)] == draws  # the trial set is the seed's draws, in draw order
    # the second search really started them the other way round (Ray numbers trials as it starts them)
    first_started = min(backward.trials, key=lambda r: r.trial_id)
    assert search_records.params_key(first_started.params) == draws[-1]
    assert all(s[1] == "completed" and s[2] == 2 for s in _scores(forward)), _scores(forward)  # nothing pruned
    assert _scores(forward) == _scores(backward)
    assert forward.best.params == backward.best.params
    with open(os.path.join(backward.out_dir, "trials.csv"), newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(float(r["embedding_size"])) for r in rows] == [p["embedding_size"] for p in spec["draws"]]
    note = open(forward.best_config_file).read()
    assert "no pruning, every trial up to 2 epochs" in note and "ASHA" not in note
