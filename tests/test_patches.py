"""Importing the package changes no process-wide state; patches.apply() installs every fix,
once; a Config the plugin builds reads no command line and nothing swaps sys.argv."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Runs in a fresh interpreter: prints a snapshot of the state RecBole and the process hold,
# after importing RecBole alone, after importing the plugin, after apply(), after apply() again.
SNAPSHOT = r"""
import json, os, sys
sys.argv = ["prog", "--epochs=7", "--learning_rate=0.5"]

def snapshot():
    import numpy as np
    import torch
    from recbole.config.configurator import Config
    from recbole.evaluator import register as reg
    import recbole.evaluator.metrics as recbole_metrics
    from recbole.trainer.trainer import Trainer

    def ident(f):
        return f"{getattr(f, '__module__', '')}.{getattr(f, '__qualname__', '')}:{id(f)}"

    return {
        "config": {name: ident(getattr(Config, name)) for name in sorted(vars(Config))
                   if callable(getattr(Config, name))},
        "trainer": {name: ident(getattr(Trainer, name)) for name in sorted(vars(Trainer))
                    if callable(getattr(Trainer, name))},
        "metrics_dict": sorted(reg.metrics_dict), "metric_types": sorted(reg.metric_types),
        "smaller": sorted(reg.smaller_metrics), "metrics_module": sorted(vars(recbole_metrics)),
        "argv": list(sys.argv), "environ": dict(os.environ),
        "numpy": sorted(vars(np)), "torch_threads": torch.get_num_threads(),
        "meta_path": [type(f).__name__ for f in sys.meta_path],
    }

import recbole.config, recbole.trainer, recbole.evaluator, recbole.data  # RecBole alone
states = {"recbole": snapshot()}
import recbole_dlrrec, recbole_dlrrec.runtime.quick_start, recbole_dlrrec.models.dlrrec, recbole_dlrrec.models.dlrm
import recbole_dlrrec.runtime.training, recbole_dlrrec.runtime.metrics, recbole_dlrrec.cli.main
import recbole_dlrrec.experiments.board_report, recbole_dlrrec.experiments.tuned_board, recbole_dlrrec.experiments.tune
import recbole_dlrrec.swing.cache, recbole_dlrrec.swing.kernels, recbole_dlrrec.data.google_local
states["imported"] = snapshot()
from recbole_dlrrec import patches
patches.apply()
states["applied"] = snapshot()
patches.apply()
states["applied_twice"] = snapshot()
print(json.dumps(states))
"""


@pytest.fixture(scope="module")
def states():
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_NUM_THREADS")}
    proc = subprocess.run(
        [sys.executable, "-c", SNAPSHOT], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.slow
def test_importing_the_package_changes_no_process_state(states):
    assert states["imported"] == states["recbole"]


@pytest.mark.slow
def test_apply_installs_the_fixes_and_twice_is_once(states):
    before, after = states["imported"], states["applied"]
    assert after != before
    assert after["config"]["_set_default_parameters"] != before["config"]["_set_default_parameters"]
    assert after["config"]["_init_device"] != before["config"]["_init_device"]  # distributed start-up (fix 9)
    assert after["trainer"]["_save_checkpoint"] != before["trainer"]["_save_checkpoint"]
    assert {"accuracy", "fpr", "cls_precision", "cls_recall", "f1", "prauc"} <= set(after["metrics_dict"]) - set(
        before["metrics_dict"]
    )
    assert after["environ"]["OMP_WAIT_POLICY"] == "PASSIVE"
    assert after["argv"] == before["argv"]  # apply() does not touch the command line
    assert states["applied_twice"] == after


def test_every_patch_is_documented():
    from recbole_dlrrec import patches

    for patch in patches.PATCHES:
        assert patch.__doc__ and patch.__doc__.split(":")[0].startswith("Fix "), patch.__name__
        number = patch.__doc__.split(":")[0].split()[1]  # "7", or "3a" for part a of fix 3
        main, part = number.rstrip("abcdefgh"), number[len(number.rstrip("abcdefgh")) :]
        assert f"\n{main}. " in patches.__doc__, patch.__name__
        assert not part or f"\n   {part}. " in patches.__doc__, patch.__name__


def test_plugin_config_reads_no_argv(tiny_config, tiny_data_path, monkeypatch):
    argv = ["prog", "--epochs=7", "--learning_rate=0.5", "--no_such_key=1"]
    monkeypatch.setattr(sys, "argv", list(argv))
    config = tiny_config("DLRM")
    assert config["epochs"] == 2 and config["learning_rate"] != 0.5  # the tiny YAML / defaults
    assert "no_such_key" not in config.final_config_dict
    assert sys.argv == argv

    # RecBole's own Config (patches installed) still reads argv as RecBole does.
    from recbole.config import Config

    from recbole_dlrrec.config.registry import get_model_class

    monkeypatch.setattr(sys, "argv", ["prog", "--epochs=7"])
    outside = Config(
        model=get_model_class("DLRM"),
        dataset="tiny",
        config_file_list=[os.path.join(tiny_data_path, "tiny", "tiny.yaml")],
        config_dict={"data_path": tiny_data_path},
    )
    assert outside["epochs"] == 7


def test_no_module_swaps_sys_argv():
    import re

    offenders = []
    for folder, _, files in os.walk(os.path.join(ROOT, "recbole_dlrrec")):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(folder, name)
                text = open(path, encoding="utf-8").read()
                offenders += [f"{os.path.relpath(path, ROOT)}" for _ in re.finditer(r"\bsys\.argv\s*=(?!=)", text)]
    assert offenders == []


def test_recbole_trainer_builds_torch_amp_grad_scaler():
    """Fix 12: RecBole's trainer module builds torch.amp's GradScaler on "cuda", with no
    FutureWarning, as the deprecated torch.cuda.amp name did apart from the warning."""
    import warnings

    import torch
    from recbole.trainer import trainer as trainer_module

    from recbole_dlrrec import patches

    patches.apply()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        scaler = trainer_module.amp.GradScaler(enabled=False)
    assert [w for w in caught if issubclass(w.category, FutureWarning)] == []
    assert isinstance(scaler, torch.amp.GradScaler) and scaler._device == "cuda"
    assert scaler.is_enabled() is False
    # Everything else RecBole's module reads from torch.cuda.amp is torch.cuda.amp's own.
    assert trainer_module.amp.autocast is torch.cuda.amp.autocast


@pytest.mark.slow
def test_every_torch_load_refuses_pickled_objects():
    """Fix 2 makes checkpoints that load as tensors and numbers, so no load in the package needs
    the unpickler that runs arbitrary code: each says weights_only=True, whatever torch's default."""
    import ast

    loose = []
    for folder, _, files in os.walk(os.path.join(ROOT, "recbole_dlrrec")):
        for name in files:
            if not name.endswith(".py"):
                continue
            path = os.path.join(folder, name)
            for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
                if (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Attribute)
                    and node.func.attr == "load"
                    and isinstance(node.func.value, ast.Name)
                    and node.func.value.id == "torch"
                ):
                    flag = next((k.value for k in node.keywords if k.arg == "weights_only"), None)
                    if not (isinstance(flag, ast.Constant) and flag.value is True):
                        loose.append(f"{os.path.relpath(path, ROOT)}:{node.lineno}")
    assert loose == []


def test_ensure_dir_survives_another_process_making_the_folder_first(tmp_path, monkeypatch):
    """Two DDP ranks: both see the checkpoint folder missing, one makes it, the other must not fail."""
    import recbole.trainer.trainer as recbole_trainer

    from recbole_dlrrec import patches

    patches.apply()
    folder = tmp_path / "saved"
    folder.mkdir()  # the other rank was first
    monkeypatch.setattr(os.path, "exists", lambda path: False)  # this rank checked before it
    recbole_trainer.ensure_dir(str(folder))
    assert folder.is_dir()
