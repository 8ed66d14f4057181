"""RecBole's pickled dataset / dataloader caches are loaded only with `trust_cache: true`
(recbole_dlrrec.patches fix 8): a pickle planted where RecBole looks must not run."""

from __future__ import annotations

import os
import pickle
import types

import pytest
from conftest import write_tiny_dataset

from recbole_dlrrec.runtime.quick_start import run


class _Planted:
    """Unpickling this object writes `marker` (what a planted cache file could do)."""

    def __init__(self, marker: str):
        self.marker = marker

    def __reduce__(self):
        return exec, (f"open({self.marker!r}, 'w').write('unpickled')",)


def _plant(path: str, marker: str) -> None:
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(_Planted(marker), handle)


def _run(data_path, tmp_path, **overrides):
    settings = {"data_path": data_path, "epochs": 1, **overrides}
    return run("DLRM", "tiny", config_dict=settings, result_file=str(tmp_path / "result.json"))


@pytest.mark.slow
def test_planted_cache_pickles_never_run_by_default(tmp_path):
    data_path = write_tiny_dataset(tmp_path / "data")
    saved = os.path.join(data_path, "saved")  # the tiny dataset's checkpoint_dir
    markers = {}
    for name in ("tiny-Dataset.pth", "tiny-for-DLRM-dataloader.pth", "elsewhere-dataset.pth", "elsewhere-loaders.pth"):
        markers[name] = str(tmp_path / f"ran-{name}")
        _plant(os.path.join(saved, name), markers[name])
    results = _run(
        data_path,
        tmp_path,  # RecBole's default file names, then the two path keys
        dataset_save_path=os.path.join(saved, "elsewhere-dataset.pth"),
        dataloaders_save_path=os.path.join(saved, "elsewhere-loaders.pth"),
    )
    ran = [name for name, marker in markers.items() if os.path.exists(marker)]
    assert not ran, f"planted pickles ran: {ran}"
    assert results["valid_result"]["auc"] > 0  # the run went on from the atomic files
    # without dataset_save_path / dataloaders_save_path RecBole falls back to the default names
    _run(data_path, tmp_path)
    assert not any(os.path.exists(marker) for marker in markers.values())


@pytest.mark.slow
def test_trusted_caches_are_loaded(tmp_path, monkeypatch):
    import recbole.data.utils as data_utils

    data_path = write_tiny_dataset(tmp_path / "data")
    first = _run(data_path, tmp_path, trust_cache=True, save_dataset=True)
    saved = os.path.join(data_path, "saved")
    assert "tiny-Dataset.pth" in os.listdir(saved)

    loaded = []  # the files RecBole's data utilities unpickle
    spy = types.SimpleNamespace(dump=pickle.dump, load=lambda handle: loaded.append(handle.name) or pickle.load(handle))
    monkeypatch.setattr(data_utils, "pickle", spy)
    again = _run(data_path, tmp_path, trust_cache=True)
    assert [os.path.basename(p) for p in loaded] == ["tiny-Dataset.pth"]
    assert again["valid_result"] == first["valid_result"]  # same data, same seed, same numbers

    loaded.clear()
    _run(data_path, tmp_path)  # trust_cache false: the same genuine file is not read
    assert loaded == []


@pytest.mark.parametrize("name", ["tiny-Dataset.pth", "tiny-for-DLRM-dataloader.pth"])
def test_trusting_a_planted_cache_runs_it(tmp_path, name):
    """What the default protects against: with trust_cache on, RecBole unpickles the file."""
    data_path = write_tiny_dataset(tmp_path / "data")
    marker = str(tmp_path / "ran")
    _plant(os.path.join(data_path, "saved", name), marker)
    with pytest.raises((AttributeError, TypeError)):  # the planted object is no Dataset / dataloaders
        _run(data_path, tmp_path, trust_cache=True)
    assert os.path.exists(marker)
