"""Training killed (SIGKILL, no chance to clean up) in each phase, then resumed, ends exactly as a run never killed:
the same weights and the complete set of artefacts."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import betavae
from betavae.config import Config
from betavae.pictures.run_figures import TrainingFigures
from betavae.training import fit, folder, resume

from .conftest import synthetic_data

CONFIG = Config.of(hidden=(16,), latent_dim=3, batch_size=32, epochs=2, beta=1.0, seed=4, latent_map_size=40)
SRC = Path(betavae.__file__).parent.parent
REPO = Path(__file__).parent.parent

# Runs in a fresh process: patches one function of the phase to kill the process where it stands, then trains.
DRIVER = """
import os, signal, sys
from pathlib import Path
import torch
from tests.conftest import synthetic_data
from tests.test_faults import CONFIG
from betavae import atomic
from betavae.pictures import report, run_figures
from betavae.training import fit, folder, trainer

torch.set_num_threads(1)
phase, run_dir = sys.argv[1], Path(sys.argv[2])
die = lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL)
if phase == "epoch-0 evaluation":
    trainer.elbo_terms = die
elif phase == "mid-epoch":
    step = trainer.Trainer._train_step
    trainer.Trainer._train_step = lambda self, *a: die() if self.step == 8 else step(self, *a)
elif phase == "checkpoint write":
    write, calls = folder.save_checkpoint, []
    def half_then_die(run_dir, state, name=folder.CHECKPOINT):
        calls.append(name)
        if len(calls) < 2:
            return write(run_dir, state, name)
        with atomic.atomic_path(run_dir / name) as tmp:
            tmp.write_bytes(b"half a checkpoint")
            die()
    folder.save_checkpoint = half_then_die
elif phase == "final figures":
    run_figures.save_interpolation = die
elif phase == "report":
    report.write_report = die
fit(CONFIG, run_dir, data=synthetic_data(), callbacks=[run_figures.TrainingFigures()], log=lambda line: None)
"""
PHASES = ["epoch-0 evaluation", "mid-epoch", "checkpoint write", "final figures", "report"]


def artefacts(run_dir: Path) -> set[str]:
    return {str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if p.is_file()}


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    torch.set_num_threads(1)  # as the resumes (conftest's autouse fixture runs after module-scoped ones)
    return fit(CONFIG, tmp_path_factory.mktemp("straight") / "run", data=synthetic_data(),
               callbacks=[TrainingFigures()], log=lambda line: None)


@pytest.mark.parametrize("phase", PHASES)
def test_a_run_killed_in_any_phase_resumes_to_the_same_end(phase, tmp_path, uninterrupted):
    run_dir = tmp_path / "run"
    env = {**os.environ, "PYTHONPATH": f"{SRC}{os.pathsep}{REPO}"}
    killed = subprocess.run([sys.executable, "-c", DRIVER, phase, str(run_dir)], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert folder.read_status(run_dir)["state"] != "finished"
    resume(run_dir, data=synthetic_data(), callbacks=[TrainingFigures()], log=lambda line: None)
    assert folder.read_status(run_dir)["state"] == "finished"
    straight, resumed = load_file(uninterrupted / folder.WEIGHTS), load_file(run_dir / folder.WEIGHTS)
    assert all(torch.equal(straight[key], resumed[key]) for key in straight)
    assert artefacts(run_dir) == artefacts(uninterrupted)  # no temporary left, nothing missing
    assert [r["epoch"] for r in folder.read_metrics(run_dir)] == [0, 1, 2]
