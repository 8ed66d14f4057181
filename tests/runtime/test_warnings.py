"""A DLRREC training run shows the user no FutureWarning and no ChainedAssignmentError: the
warnings RecBole's code paths raised on every run (its torch.cuda.amp GradScaler, its chained
pandas fills) are fixed in patches.py, not filtered."""

from __future__ import annotations

import os
import warnings

import pytest


@pytest.mark.slow
def test_dlrrec_training_run_raises_no_future_warning(tiny_data_path, tmp_path):
    from recbole_dlrrec.runtime.quick_start import run

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # every warning, whatever pytest.ini or earlier tests filter
        results = run(
            "DLRREC",
            "tiny",
            config_dict={"data_path": tiny_data_path, "epochs": 1},
            result_file=os.path.join(tmp_path, "run.json"),
            saved=False,
        )
    assert len(results["epochs"]) == 1
    shown = [
        f"{w.category.__name__} at {w.filename}:{w.lineno}: {str(w.message)[:120]}"
        for w in caught
        if issubclass(w.category, FutureWarning) or w.category.__name__ == "ChainedAssignmentError"
    ]
    assert shown == []
