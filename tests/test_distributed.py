"""DDP under torchrun: 2 CPU processes (gloo on 127.0.0.1) with batch B follow one process with batch 2B."""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from betavae.training import folder
from betavae.training.distributed import Context

from .conftest import synthetic_images

pytestmark = pytest.mark.slow


def test_local_slices_partition_the_batch_with_the_right_scale():
    batch = torch.arange(10)
    parts = [Context(rank=r, world_size=3).local_slice(batch) for r in range(3)]
    assert torch.cat([batch[p] for p, _ in parts]).tolist() == list(range(10))
    # the scaled local means average to the global mean
    values = torch.rand(10)
    assert sum(values[p].mean() * s for p, s in parts) / 3 == pytest.approx(values.mean().item(), rel=1e-6)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ddp")
    x, y = synthetic_images(320, (12, 12))
    np.savez(folder / "data.npz", images=x, labels=y)
    return folder


def betavae(folder, *argv, processes=1):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    env.pop("WORLD_SIZE", None)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={processes}",
                "-m", "betavae"] if processes > 1 else [sys.executable, "-m", "betavae"]
    common = ["--dataset", str(folder / "data.npz"), "--val-size", "32", "--hidden", "32", "--latent-dim", "4",
              "--threads", "1", "--no-figures", "--runs", str(folder), "--pixels", "binary", "--seed", "5",
              "--lr-schedule", "none"]
    result = subprocess.run([*launcher, "train", *argv, *common], capture_output=True, text=True, timeout=240,
                            env=env, stdin=subprocess.DEVNULL)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def assert_close_weights(a, b, atol):
    wa, wb = load_file(a / folder.WEIGHTS), load_file(b / folder.WEIGHTS)
    for key in wa:
        assert torch.allclose(wa[key], wb[key], atol=atol, rtol=0), (key, (wa[key] - wb[key]).abs().max())


def test_two_processes_match_one_with_the_combined_batch(dataset):
    betavae(dataset, "--batch-size", "16", "--epochs", "2", "--name", "ddp", processes=2)
    betavae(dataset, "--batch-size", "32", "--epochs", "2", "--name", "single")
    assert_close_weights(dataset / "ddp", dataset / "single", atol=1e-5)
    ddp, single = folder.read_metrics(dataset / "ddp"), folder.read_metrics(dataset / "single")
    assert [r["epoch"] for r in ddp] == [0, 1, 2]
    assert ddp[-1]["train"]["loss"] == pytest.approx(single[-1]["train"]["loss"], rel=1e-5)
    assert ddp[-1]["step"] == single[-1]["step"] == 2 * 8


def test_resume_under_torchrun(dataset):
    betavae(dataset, "--batch-size", "16", "--epochs", "1", "--name", "ddp-resumed", processes=2)
    subprocess_result = betavae(dataset, "--resume", str(dataset / "ddp-resumed"), "--epochs", "2", processes=2)
    assert folder.read_status(dataset / "ddp-resumed")["state"] == "finished", subprocess_result.stderr
    if not (dataset / "ddp").exists():
        betavae(dataset, "--batch-size", "16", "--epochs", "2", "--name", "ddp", processes=2)
    assert_close_weights(dataset / "ddp-resumed", dataset / "ddp", atol=1e-6)


def test_ray_sweep_matches_the_local_backend(dataset, tmp_path):
    """A two-point sweep as Ray tasks on a local instance (num_cpus=2), aggregated exactly as the local backend."""
    ray = pytest.importorskip("ray", reason="the ray extra is not installed (CI installs betavae[ray])")
    from betavae.config import Config
    from betavae.sweep import SUMMARY_CSV, sweep

    base = Config.of(dataset=str(dataset / "data.npz"), val_size=32, hidden=(16,), latent_dim=2, epochs=1,
                  batch_size=32, threads=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote_rows = sweep(base, tmp_path / "ray", {"beta": [0.5, 2.0]}, [0], backend="ray", log=lambda line: None)
    finally:
        ray.shutdown()
    local_rows = sweep(base, tmp_path / "local", {"beta": [0.5, 2.0]}, [0], backend="local", log=lambda line: None)
    assert remote_rows == local_rows and len(remote_rows) == 2
    assert (tmp_path / "ray" / SUMMARY_CSV).read_text() == (tmp_path / "local" / SUMMARY_CSV).read_text()
