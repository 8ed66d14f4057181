"""The search-space audit: every regulariser a tuned model applies is searched or deliberately fixed,
and results/search_spaces.md says what the code and properties/tune/ say."""

from __future__ import annotations

import os

import pytest

from recbole_dlrrec.experiments import space_audit

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = os.path.join(ROOT, "results", "search_spaces.md")


@pytest.fixture(scope="module")
def audits():
    return {a.model: a for a in space_audit.audit()}


def test_every_regulariser_is_searched_or_deliberately_fixed(audits):
    uncovered = {model: a.uncovered for model, a in audits.items() if a.uncovered}
    assert not uncovered, f"regularisers neither searched nor in space_audit.DELIBERATELY_FIXED: {uncovered}"


def test_regularisers_are_read_from_the_model_source(audits):
    # RecBole's own: DCNV2, xDeepFM and PNN add reg_weight x a norm to their loss; AutoInt drops per layer.
    assert "reg_weight" in audits["DCNV2"].regularisers and "reg_weight" in audits["PNN"].regularisers
    assert "reg_weight" in audits["xDeepFM"].regularisers and "dropout_probs" in audits["AutoInt"].regularisers
    assert "dropout_prob" not in audits["FM"].regularisers  # FM has no dropout
    # The plugin's: the fields of their typed options objects (DLRMOptions, DLRRECOptions).
    assert {"embedding_l2", "top_dropout", "dropout_prob"} <= set(audits["DLRM"].regularisers)
    assert {"reduction_dropout", "text_dropout"} <= set(audits["DLRREC"].regularisers)
    assert all("weight_decay" in a.regularisers for a in audits.values())  # the Trainer's, for every model


def test_dcnv2_searches_its_cross_weight_penalty(audits):
    """RecBole's default reg_weight 2 on the cross weights' norm is left to the search."""
    from recbole_dlrrec.config.stack import PROPERTIES_DIR, ConfigStack
    from recbole_dlrrec.experiments.tune_space import model_space

    assert "reg_weight" in audits["DCNV2"].searched
    param = model_space("DCNV2", PROPERTIES_DIR, ConfigStack("DCNV2", None, (), {}).plugin_files()).params["reg_weight"]
    assert param.dist == "loguniform" and param.args[0] <= 1e-4 and param.args[1] >= 1.0


def test_a_regulariser_left_out_without_a_reason_is_reported(monkeypatch):
    monkeypatch.setitem(space_audit.DELIBERATELY_FIXED, "PNN", {})
    pnn = space_audit.audit_model("PNN")
    assert pnn.uncovered == ["reg_weight"]
    assert "`reg_weight`: NOT SEARCHED, NO REASON" in space_audit.spaces_markdown([pnn])


def test_committed_page_matches_the_code_and_spaces(audits):
    with open(PAGE, encoding="utf-8") as handle:
        committed = handle.read()
    generated = space_audit.spaces_markdown(list(audits.values()))
    assert committed.split(space_audit.SECTION_SEARCHES)[0].rstrip() == generated.rstrip(), (
        "results/search_spaces.md is out of date: python -m recbole_dlrrec.experiments.space_audit "
        "--out results/search_spaces.md"
    )


def test_saved_searches_of_another_space_are_marked_stale(tmp_path):
    import json

    folder = tmp_path / "toy-tuned" / "tuning" / "DCNV2"
    folder.mkdir(parents=True)
    (folder / "tuning.json").write_text(
        json.dumps(
            {
                "status": "ok",
                "inputs": {"trials": 4, "space": {"structure": {}}},
                "trial_counts": {"completed": 1, "pruned": 3},
            }
        )
    )
    text = space_audit.searches_markdown(str(tmp_path))
    assert "| DCNV2 | 4 (1/3/0) stale |" in text
    (folder / "tuning.json").write_text("{broken")
    with pytest.raises(space_audit.SpaceAuditError, match="tuning.json"):
        space_audit.searches_markdown(str(tmp_path))
