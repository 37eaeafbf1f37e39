"""``torchrun -m huale`` with 2 CPU processes (gloo): DDP training, sharded scoring, failures.

Every run is a real ``python -m torch.distributed.run --standalone`` job (the rendezvous picks a
free port) with one thread per process. The selection of a 2-process ``huale select`` must equal
the single-process one exactly: same ranking, same scores, byte-identical scoring shards.

Failures are injected by running this module as the workers' entry point (see ``__main__``
below): on rank 1 it makes pool scoring raise or hang, or training see a NaN loss, then runs
``huale``. The job must end with a non-zero status within a bounded time, never hang.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
STARTUP_S = 60  # generous bound for a 2-process job to start, fail and be torn down


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(PYTHONPATH=os.pathsep.join([str(REPO / "src"), str(REPO)]), OMP_NUM_THREADS="1")
    env.pop("WORLD_SIZE", None)
    env.update(extra)
    return env


def _torchrun(*args: str, module: str = "huale", timeout: float = 180, **env: str):
    """``torchrun --standalone --nproc_per_node 2 -m MODULE ARGS``: (returncode, stderr, seconds)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
               "2", "-m", module, *args]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=REPO, env=_env(**env), capture_output=True, text=True,
                          timeout=timeout)
    return done.returncode, done.stdout, done.stderr, time.perf_counter() - start


def _single(*args: str) -> None:
    """``python -m huale ARGS`` in one process with one thread (as each torchrun worker)."""
    done = subprocess.run([sys.executable, "-m", "huale", *args], cwd=REPO, env=_env(),
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]


def _select_args(workspace: Path, out: Path) -> list[str]:
    # 7 pool images in shards of 3 (3, 3, 1): batches of 2 never cross a shard, so the 2
    # processes see the batches a single process sees; round 2 leaves rank 1 without a shard
    return [
        "-q", "select", "--checkpoint", str(workspace / "train" / "model.pt"),
        "--pool", str(workspace / "data"), "--pool-split", "test",
        "--labeled", str(workspace / "data"), "--budget", "3", "--strategy", "cald",
        "--device", "cpu", "--workers", "0", "--batch-size", "2", "--shard-size", "3",
        "--out", str(out),
    ]


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    """Synthetic data (16 train / 7 test images at 64 px) and a detector trained 1 epoch by a
    2-process DDP job."""
    from huale.data.synthetic import generate_synthetic

    root = tmp_path_factory.mktemp("distributed")
    generate_synthetic(root / "data", num_images=23, seed=3, image_size=64, test_fraction=0.3,
                       progress=False)
    code, out, err, _ = _torchrun(
        "train", "--data", str(root / "data"), "--out", str(root / "train"), "--arch", "small",
        "--min-size", "64", "--max-size", "64", "--epochs", "1", "--batch-size", "2",
        "--warmup-iters", "0", "--lr-steps", "--device", "cpu", "--workers", "0",
    )
    assert code == 0, err[-3000:]
    return root, out, err


def test_ddp_training_writes_one_checkpoint_from_rank_0(workspace):
    root, out, err = workspace
    assert sorted(p.name for p in (root / "train").iterdir()) == [
        "checkpoint.pt", "history.json", "model.pt"
    ]
    history = json.loads((root / "train" / "history.json").read_text())["history"]
    # 16 images over 2 processes = 8 each, in batches of 2: 4 iterations per process
    assert len(history) == 1 and np.isfinite(history[0]["loss"])
    assert out.count("trained 1 epochs") == 1  # only rank 0 prints the result
    assert "SyncBatchNorm needs GPUs" in err  # the CPU fallback is announced, once
    assert err.count("SyncBatchNorm needs GPUs") == 1


def test_two_processes_select_exactly_what_one_process_selects(workspace):
    root, _, _ = workspace
    single, double = root / "select-1", root / "select-2"
    _single(*_select_args(root, single))
    code, out, err, _ = _torchrun(*_select_args(root, double))
    assert code == 0, err[-3000:]
    assert out.count("selected 3 of 7 pool images") == 1

    one = json.loads((single / "selection.json").read_text())
    two = json.loads((double / "selection.json").read_text())
    assert len(one["ranking"]) == 7 and len({r["score"] for r in one["ranking"]}) > 1
    assert two["ranking"] == one["ranking"]  # ids, ranks, scores, stages
    assert two["selected"] == one["selected"]
    assert (double / "selection.csv").read_text() == (single / "selection.csv").read_text()
    # the records themselves: rank 0 wrote every shard, each equal to the single process's
    shards = sorted(p.relative_to(single) for p in single.glob(".scoring/*/shard-*.npz"))
    assert [p.parent.name for p in shards] == ["pool-orig+flip+cutout+resize+rotate"] * 3
    assert shards == sorted(p.relative_to(double) for p in double.glob(".scoring/*/shard-*.npz"))
    for name in shards:
        with np.load(single / name) as a, np.load(double / name) as b:
            assert a.files == b.files
            for key in a.files:
                np.testing.assert_array_equal(a[key], b[key], err_msg=f"{name} {key}")


def test_a_rank_that_raises_ends_the_job(workspace):
    root, _, _ = workspace
    code, _, err, seconds = _torchrun(
        "raise", *_select_args(root, root / "select-raise"), module="tests.runtime.test_distributed"
    )
    assert code != 0 and seconds < STARTUP_S
    assert "injected failure on rank 1" in err


def test_a_hanging_rank_times_out_the_others(workspace):
    root, _, _ = workspace
    # rank 1 sleeps an hour inside scoring; rank 0 waits for its records 3 s only
    code, _, err, seconds = _torchrun(
        "hang", *_select_args(root, root / "select-hang"), module="tests.runtime.test_distributed",
        HUALE_DIST_TIMEOUT_MIN="0.05",
    )
    assert code != 0 and seconds < STARTUP_S
    assert "huale select: error: process 0: no answer from the other processes" in err
    assert "timeout 0.05 min, HUALE_DIST_TIMEOUT_MIN" in err


def test_a_nan_loss_on_one_rank_stops_every_rank(workspace):
    root, _, _ = workspace
    code, _, err, seconds = _torchrun(
        "nan", "train", "--data", str(root / "data"), "--out", str(root / "train-nan"),
        "--arch", "small", "--min-size", "64", "--max-size", "64", "--epochs", "1",
        "--batch-size", "2", "--device", "cpu", "--workers", "0",
        module="tests.runtime.test_distributed",
    )
    assert code != 0 and seconds < STARTUP_S
    # both processes stop with the documented error; rank 0 reports the one rank 1 met
    assert err.count("huale train: error: non-finite loss at epoch 1, iteration 2") == 1
    assert "(process 1)" in err
    assert not (root / "train-nan" / "model.pt").exists()


def test_single_process_helpers_answer_as_rank_0_of_1(monkeypatch):
    from huale.runtime import distributed

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert not distributed.init_from_env()  # not launched by torchrun: nothing to join
    assert (distributed.rank(), distributed.world_size(), distributed.is_main()) == (0, 1, True)
    assert distributed.run_on_main(lambda x: x + 1, 1) == 2
    assert distributed.broadcast_object("a") == "a"
    assert distributed.gather_object("a") == distributed.all_gather_object("a") == ["a"]
    assert distributed.any_true(True, "cpu") and not distributed.any_true(False, "cpu")
    assert distributed.all_reduce_mean([1.5, 2.0], "cpu") == [1.5, 2.0]
    distributed.barrier()
    assert distributed.local_device("cuda") == torch.device("cuda")  # no index without torchrun


def test_timeout_comes_from_the_environment(monkeypatch):
    from huale.errors import ConfigError
    from huale.runtime import distributed

    monkeypatch.delenv("HUALE_DIST_TIMEOUT_MIN", raising=False)
    assert distributed.timeout().total_seconds() == 30 * 60
    monkeypatch.setenv("HUALE_DIST_TIMEOUT_MIN", "0.05")
    assert distributed.timeout().total_seconds() == pytest.approx(3.0)  # 0.05 min = 3 s
    for bad in ("soon", "0", "-1"):
        monkeypatch.setenv("HUALE_DIST_TIMEOUT_MIN", bad)
        with pytest.raises(ConfigError, match="HUALE_DIST_TIMEOUT_MIN"):
            distributed.timeout()


def test_an_error_relayed_from_rank_0_keeps_its_type_and_message():
    from huale.errors import DataError
    from huale.runtime.distributed import _relayed, describe_error

    class Local(Exception):  # not importable by another process: becomes a RuntimeError
        pass

    error = _relayed(*describe_error(DataError("pool/a.jpg", "unreadable")))
    assert type(error) is DataError and str(error) == "pool/a.jpg: unreadable"
    assert error.relayed_from == 0
    error = _relayed(*describe_error(Local("x")))
    assert type(error) is RuntimeError and str(error) == "x"


def test_scoring_batches_never_cross_a_chunk():
    from huale.inference.scoring import _chunk_batches

    # chunks of 3, 3 and 1 images, batches of 2: positions 0-2 | 3-5 | 6
    assert _chunk_batches([3, 3, 1], 2) == [[0, 1], [2], [3, 4], [5], [6]]
    # chunks that are whole batches give the batches of one uninterrupted stream
    assert _chunk_batches([4, 4, 2], 2) == [[0, 1], [2, 3], [4, 5], [6, 7], [8, 9]]


def test_sync_batchnorm_is_reverted_to_the_same_tensors():
    from torch import nn

    from huale.engine.train import _revert_sync_batchnorm

    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.Sequential(nn.BatchNorm1d(2)))
    model[1].running_mean.fill_(0.5)
    layers = {"1": nn.BatchNorm2d, "2.0": nn.BatchNorm1d}
    weight = model[1].weight
    nn.SyncBatchNorm.convert_sync_batchnorm(model)
    assert isinstance(model[1], nn.SyncBatchNorm) and isinstance(model[2][0], nn.SyncBatchNorm)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _revert_sync_batchnorm(model, layers)
    assert type(model[1]) is nn.BatchNorm2d and type(model[2][0]) is nn.BatchNorm1d
    assert model[1].weight is weight  # the optimizer's parameters stay the model's
    after = model.state_dict()
    assert list(after) == list(before)
    assert all(torch.equal(after[k], before[k]) for k in before)


def _inject(mode: str) -> None:
    """On rank 1: make pool scoring raise (``raise``) or hang (``hang``), or training meet a
    NaN loss at its second iteration (``nan``)."""
    if os.environ.get("RANK") != "1":
        return
    if mode in ("raise", "hang"):
        from huale.inference import scoring

        def broken(*args, **kwargs):
            if mode == "hang":
                time.sleep(3600)
            raise RuntimeError("injected failure on rank 1")

        scoring.predict_items = broken
    elif mode == "nan":
        from huale.engine import train

        original, calls = train.detector_forward, []

        def diverging(*args, **kwargs):
            losses = original(*args, **kwargs)
            calls.append(1)
            if len(calls) == 2:
                losses["loss_classifier"] = losses["loss_classifier"] * float("nan")
            return losses

        train.detector_forward = diverging
    else:
        raise SystemExit(f"unknown failure mode {mode!r}")


if __name__ == "__main__":  # the workers' entry point of the failure tests: MODE HUALE-ARGS...
    _inject(sys.argv[1])
    from huale.cli import main

    sys.exit(main(sys.argv[2:]))
