"""Distributed training through RecBole's DDP path (runtime/launcher.py, runtime/distributed.py,
patches.py fixes 7-8): per-rank shards of the fast loader, the gathered evaluation, 2-process gloo
runs, bad launches."""

from __future__ import annotations

import glob
import json
import os
import socket
import subprocess
import sys
from multiprocessing import resource_tracker

import psutil
import pytest
import torch

import recbole_dlrrec  # noqa: F401
from recbole_dlrrec.runtime.fast_loader import FastEvalDataLoader, FastTrainDataLoader, RankShard
from recbole_dlrrec.runtime.launcher import Launch, LaunchError, check_devices, check_launch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = sys.executable


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


# -- shards ----------------------------------------------------------------------------------
@pytest.mark.parametrize("n, world", [(10, 2), (11, 2), (7, 3), (2, 4)])
def test_rank_shards_cover_every_row_once_plus_padding(n, world):
    order = torch.randperm(n)
    shares = [RankShard(rank, world).take(order, pad=True) for rank in range(world)]
    assert len({share.numel() for share in shares}) == 1  # same number of rows, so of batches
    taken = torch.cat(shares)
    assert sorted(set(taken.tolist())) == list(range(n))
    assert taken.numel() - n == (-n) % world  # only DistributedSampler's padding repeats
    unpadded = [RankShard(rank, world).take(order, pad=False) for rank in range(world)]
    assert sorted(torch.cat(unpadded).tolist()) == list(range(n))


def _as_rank(config, rank: int, world: int) -> None:
    config["single_spec"], config["local_rank"], config["world_size"], config["offset"] = False, rank, world, 0


def test_fast_loaders_shard_per_rank(tiny_config):
    from recbole.data import create_dataset, data_preparation

    config = tiny_config("DLRM")
    dataset = create_dataset(config)
    train, valid, _ = data_preparation(config, dataset)
    n_train, n_valid, batch = len(train._dataset), len(valid._dataset), config["train_batch_size"]
    epochs = {}
    for rank in range(2):
        _as_rank(config, rank, 2)
        loader = FastTrainDataLoader(config, train._dataset, None, shuffle=True)
        loader.columns = {"row": torch.arange(n_train)}  # batches then say which rows they hold
        assert loader.step == batch // 2
        rows = []
        for epoch in range(2):
            loader.sampler.set_epoch(epoch)
            batches = list(loader)
            assert len(batches) == len(loader)
            rows.append(torch.cat([b["row"] for b in batches]))
        epochs[rank] = rows
        evaluation = FastEvalDataLoader(config, valid._dataset, None, phase="valid")
        evaluation.columns = {"row": torch.arange(n_valid)}
        assert torch.equal(torch.cat([b[0]["row"] for b in evaluation]), torch.arange(n_valid)[rank::2])
    for epoch in range(2):
        assert len(epochs[0][epoch]) == len(epochs[1][epoch]) == -(-n_train // 2)
        both = torch.cat([epochs[0][epoch], epochs[1][epoch]])
        assert sorted(set(both.tolist())) == list(range(n_train))
        assert both.numel() - n_train == n_train % 2  # disjoint shares, DistributedSampler's padding only
    assert not torch.equal(epochs[0][0], epochs[0][1])  # reshuffled every epoch


def test_swing_sampler_streams_differ_per_rank_and_rank0_keeps_the_seed():
    from recbole_dlrrec.swing.sampler import SwingSampler

    ids = torch.tensor([[0, 0], [2, 3], [1, 3], [1, 2]])
    scores = torch.tensor([[0.0, 0.0], [1.0, 2.0], [1.0, 1.0], [3.0, 1.0]])

    def draw(**kw):
        return SwingSampler(ids, scores, 4, seed=7, **kw).sample(torch.tensor([1, 2, 3] * 20), 2)[1]

    assert torch.equal(draw(), draw(rank=0))  # one process: the numbers it always gave
    assert not torch.equal(draw(rank=0), draw(rank=1))


# -- gathered evaluation ---------------------------------------------------------------------
def _gather_worker(rank, world, port, n_total, out):
    import torch.distributed as dist

    from recbole_dlrrec.patches import gather_rows

    dist.init_process_group("gloo", rank=rank, world_size=world, init_method=f"tcp://localhost:{port}")
    index = torch.arange(n_total)
    padded = torch.cat([index, index[: (-n_total) % world]])  # DistributedSampler, shuffle=False
    mine = padded[rank::world]
    rows = torch.stack([mine.float(), mine.float() * 10], dim=1)
    gathered = gather_rows(rows, n_total)
    torch.save(gathered, os.path.join(out, f"rank{rank}.pt"))
    dist.destroy_process_group()


@pytest.mark.slow
def test_gather_rows_restores_every_row_once_in_order(tmp_path):
    import torch.multiprocessing as mp

    n_total = 11
    mp.spawn(_gather_worker, args=(2, free_port(), n_total, str(tmp_path)), nprocs=2, join=True)
    expected = torch.stack([torch.arange(n_total).float(), torch.arange(n_total).float() * 10], dim=1)
    for rank in range(2):
        assert torch.equal(torch.load(tmp_path / f"rank{rank}.pt"), expected)


# -- 2-process runs ----------------------------------------------------------------------------
def _train(tmp_path, model, data_path, dataset, *extra, nproc=1):
    result = tmp_path / f"{model}-{nproc}.json"
    cmd = [
        PYTHON,
        os.path.join(ROOT, "run_recbole.py"),
        f"--model={model}",
        f"--dataset={dataset}",
        f"--result_file={result}",
        f"--nproc={nproc}",
        f"--port={free_port()}",
        *extra,
    ]
    if data_path:
        cmd.append(f"--data_path={data_path}")
    done = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(result.read_text())


@pytest.fixture(scope="module")
def odd_tiny(tmp_path_factory):
    """The tiny dataset with an odd number of valid rows, so RecBole's DistributedSampler pads."""
    from conftest import write_tiny_dataset

    return write_tiny_dataset(tmp_path_factory.mktemp("odd"), n_rows=3011)


def _evaluate_alone(model, data_path, checkpoint, result):
    """The saved best model evaluated in one process, on the valid and test splits."""
    from recbole_dlrrec.runtime.quick_start import build_config, build_model, load_splits
    from recbole_dlrrec.runtime.training import build_trainer

    overrides = {k: v for k, v in result["config"].items() if k in ("epochs", "seed", "checkpoint_dir")}
    config = build_config(model, "tiny", config_dict={"data_path": data_path, **overrides})
    _, train, valid, test = load_splits(config)
    trainer = build_trainer(config, build_model(config, train))
    return (
        trainer.evaluate(valid, load_best_model=True, model_file=checkpoint),
        trainer.evaluate(test, load_best_model=False),
    )


@pytest.mark.slow
@pytest.mark.parametrize("model", ["DLRM", "DeepFM", "DLRREC"])
def test_two_gloo_processes_train_once_and_evaluate_every_row(tmp_path, odd_tiny, model):
    result = _train(tmp_path, model, odd_tiny, "tiny", "--epochs=2", nproc=2)
    assert result["config"]["world_size"] == 2 and result["config"]["single_spec"] is False
    assert glob.glob(str(tmp_path / "*.json")) == [str(tmp_path / f"{model}-2.json")]  # one results file
    checkpoints = glob.glob(os.path.join(odd_tiny, "saved", f"{model}-*.pth"))
    assert checkpoints == [result["saved_model_file"]]  # one checkpoint, from rank 0
    assert len(glob.glob(str(tmp_path / "log" / "*" / "*.log"))) == 1  # rank 0 logs alone
    assert len(os.listdir(tmp_path / "log_tensorboard")) == 1
    # The gathered metrics are the metrics of all rows: one process evaluating the same model
    # on the same rows gets the same numbers (a per-shard average of AUCs would not).
    valid, test = _evaluate_alone(model, odd_tiny, result["saved_model_file"], result)
    assert result["valid_result"] == pytest.approx(dict(valid), abs=2e-4)
    assert result["test_result"] == pytest.approx(dict(test), abs=2e-4)
    os.remove(result["saved_model_file"])


@pytest.mark.slow
def test_two_machines_meet_on_ip_and_port(tmp_path, tiny_data_path):
    """Two launches as two machines would start them (here both on localhost): --world_size=2,
    one process each, --offset 0 and 1. Rank 0's machine writes the results; the other says so."""
    port = free_port()
    common = [
        PYTHON,
        os.path.join(ROOT, "run_recbole.py"),
        "--model=DLRM",
        "--dataset=tiny",
        f"--data_path={tiny_data_path}",
        "--epochs=1",
        "--nproc=1",
        "--world_size=2",
        "--ip=127.0.0.1",
        f"--port={port}",
        f"--checkpoint_dir={tmp_path / 'saved'}",
    ]
    machines = []
    for offset in (0, 1):
        workdir = tmp_path / f"machine{offset}"
        workdir.mkdir()
        machines.append(
            subprocess.Popen(
                common + [f"--offset={offset}", f"--result_file={workdir / 'r.json'}"],
                cwd=workdir,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    (out0, err0), (out1, err1) = (machine.communicate(timeout=600) for machine in machines)
    assert machines[0].returncode == 0, err0[-3000:]
    assert machines[1].returncode == 0, err1[-3000:]
    result = json.loads((tmp_path / "machine0" / "r.json").read_text())
    assert result["config"]["world_size"] == 2
    assert not (tmp_path / "machine1" / "r.json").exists()
    assert "rank 0 on 127.0.0.1 wrote the results" in out1
    assert len(os.listdir(tmp_path / "saved")) == 1


@pytest.mark.slow
def test_two_processes_reach_the_one_process_auc_on_ml100k(tmp_path):
    """DLRM, 3 epochs on ml-100k (10k test rows). Tolerance 0.01 test AUC: over seeds 1-5 the
    one-process test AUC spread 0.7641-0.7710 (std 0.003, so the difference of two independent
    runs has std ~0.004: 0.01 is ~2.5 of those), and 1 vs 2 processes differed by 0.0004-0.0036
    over 4 seeds. The two runs are not identical by design: the 2-process epochs use other
    orders (seed + epoch per epoch) and each rank its own dropout stream."""
    side = os.path.join(ROOT, "dataset", "ml-100k")  # the text vectors are built once, there
    extra = ("--epochs=3", f"--side_data_path={side}", f"--checkpoint_dir={tmp_path / 'saved'}")
    one = _train(tmp_path, "DLRM", None, "ml-100k", *extra, nproc=1)
    two = _train(tmp_path, "DLRM", None, "ml-100k", *extra, nproc=2)
    assert two["test_result"]["auc"] == pytest.approx(one["test_result"]["auc"], abs=0.01)
    assert two["test_result"]["auc"] > 0.74  # it did learn (0.5 = chance)


# -- bad launches ------------------------------------------------------------------------------
def _main_fails(argv, capsys):
    from recbole_dlrrec.cli.train import main

    before = {child.pid for child in psutil.Process().children(recursive=True)}
    code = main(argv)
    err = capsys.readouterr().err.strip()
    after = {
        child.pid
        for child in psutil.Process().children(recursive=True)
        if child.is_running() and child.status() != psutil.STATUS_ZOMBIE
    }
    # multiprocessing's resource tracker is one helper per parent process, alive until it exits.
    after.discard(getattr(resource_tracker._resource_tracker, "_pid", None))
    assert code == 2
    assert len(err.splitlines()) == 1 and err.startswith("error: ")
    assert after <= before, [(pid, psutil.Process(pid).cmdline()[-3:]) for pid in after - before]  # no rank left
    return err


def test_more_processes_than_cores_fails_in_one_line(capsys, tiny_data_path):
    err = _main_fails(
        [
            "--model=DLRM",
            "--dataset=tiny",
            f"--data_path={tiny_data_path}",
            f"--nproc={(os.cpu_count() or 1) + 1}",
            f"--port={free_port()}",
        ],
        capsys,
    )
    assert "--nproc" in err and "cores" in err


def test_busy_port_fails_in_one_line(capsys, tiny_data_path):
    with socket.socket() as busy:
        busy.bind(("", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        err = _main_fails(
            ["--model=DLRM", "--dataset=tiny", f"--data_path={tiny_data_path}", "--nproc=2", f"--port={port}"], capsys
        )
    assert f"--port={port}" in err and "in use" in err


def test_world_size_below_nproc_fails_in_one_line(capsys, tiny_data_path):
    err = _main_fails(
        [
            "--model=DLRM",
            "--dataset=tiny",
            f"--data_path={tiny_data_path}",
            "--nproc=2",
            "--world_size=1",
            f"--port={free_port()}",
        ],
        capsys,
    )
    assert "--world_size=1" in err


def test_launch_checks():
    check_launch(Launch(nproc=1, world_size=2, offset=1, port=free_port()))  # the second machine
    assert not Launch().distributed and Launch(nproc=1, world_size=2).distributed
    with pytest.raises(LaunchError, match="offset"):
        check_launch(Launch(nproc=2, world_size=3, offset=2, port=free_port()))
    with pytest.raises(LaunchError, match="nproc"):
        check_launch(Launch(nproc=0))


def test_more_processes_than_gpus_fails(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    config = {"gpu_id": "0,1", "use_gpu": True}
    with pytest.raises(LaunchError, match="GPUs"):
        check_devices(Launch(nproc=2), config)
    check_devices(Launch(nproc=1), config)
    check_devices(Launch(nproc=2), {"gpu_id": "", "use_gpu": True})  # CPU run: cores decide


@pytest.mark.slow
def test_a_rank_that_stops_on_bad_input_stops_the_run_in_one_line(tmp_path, capsys):
    """The data are only read in the ranks: a NaN feature (FeatureError there) ends every rank
    and comes back as the one-line error, with no process left."""
    from conftest import write_tiny_dataset

    data_path = write_tiny_dataset(str(tmp_path), name="holes")
    folder = os.path.join(data_path, "holes")
    with open(os.path.join(folder, "holes.item"), encoding="utf-8") as handle:
        lines = handle.read().splitlines()
    with open(os.path.join(folder, "holes.item"), "w", encoding="utf-8") as handle:
        handle.write(lines[0] + "\tlatitude:float\n" + "".join(line + "\t\n" for line in lines[1:]))
    with open(os.path.join(folder, "holes.yaml"), encoding="utf-8") as handle:
        text = handle.read()
    text = text.replace("price_level]", "price_level, latitude]")  # load_col, numerical, normalize
    with open(os.path.join(folder, "holes.yaml"), "w", encoding="utf-8") as handle:
        handle.write(text)
    err = _main_fails(
        [
            "--model=DLRM",
            "--dataset=holes",
            f"--data_path={data_path}",
            "--nproc=2",
            f"--port={free_port()}",
            f"--result_file={tmp_path / 'r.json'}",
        ],
        capsys,
    )
    assert "'latitude'" in err
    assert not (tmp_path / "r.json").exists()


def test_ddp_leaves_the_text_tables_out_of_its_buffer_broadcast(tiny_config):
    """DLRREC's text tables and row lookups are non-persistent buffers every rank builds from the
    same files: DDP must not send them from rank 0 before every forward (with a per-row user
    history that is hundreds of MB a step). Persistent buffers (a fitted PCA) still go."""
    from recbole_dlrrec.patches import constant_buffer_names
    from recbole_dlrrec.runtime.quick_start import build_model, load_splits

    config = tiny_config("DLRREC", reduction="pca")
    _, train, _, _ = load_splits(config)
    model = build_model(config, train)
    names = constant_buffer_names(model)
    persistent = set(model.state_dict())
    buffers = dict(model.named_buffers())
    assert names and all(name in buffers and name not in persistent for name in names)
    assert any(name.endswith(".vectors") for name in names)
    assert {name for name in buffers if name not in persistent} == set(names)
    assert any(name.endswith("pca_components") for name in buffers) and not any(
        name.endswith("pca_components") for name in names
    )
