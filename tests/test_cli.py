"""The command line: a thin layer; every user error is one line and a non-zero exit."""

import numpy as np
import pytest

from betavae import cli
from betavae.training import folder

from .conftest import synthetic_images


@pytest.fixture
def npz(tmp_path):
    x, y = synthetic_images(200, (12, 12))
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    return tmp_path / "d.npz"


@pytest.mark.parametrize("argv, message", [
    (["train", "--beta", "-1"], "beta must be at least 0"),
    (["train", "--latent-dim", "0"], "latent_dim must be at least 1"),
    (["train", "--arch", "resnet"], "unknown arch 'resnet'"),
    (["train", "--epochs", "x"], "epochs got 'x'"),
    (["train", "--resume", "/nonexistent/run"], "does not exist"),
    (["train", "--config", "/nonexistent.toml"], "does not exist"),
    (["train", "--dataset", "/nonexistent.npz"], "does not exist"),
    (["evaluate", "/nonexistent/run"], "does not exist"),
    (["disentanglement", "/nonexistent/run"], "does not exist"),
    (["train", "--dataset", "dsprites", "--data-dir", "/nonexistent"], "does not exist; pass --data-dir"),
])
def test_errors_are_one_line(argv, message, capsys):
    assert cli.main(argv) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("betavae: error:") and message in err and "\n" not in err and "Traceback" not in err


def test_train_then_resume_with_more_epochs(npz, tmp_path, capsys):
    common = ["--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--latent-dim", "2", "--batch-size", "32",
              "--no-figures", "--runs", str(tmp_path), "--name", "r"]
    assert cli.main(["train", "--epochs", "1", *common]) == 0
    assert cli.main(["train", "--resume", str(tmp_path / "r"), "--epochs", "2", "--no-figures"]) == 0
    assert folder.read_status(tmp_path / "r")["epoch"] == 2
    assert cli.main(["train", "--resume", str(tmp_path / "r"), "--beta", "3", "--no-figures"]) == 1
    assert "cannot change beta" in capsys.readouterr().err


def test_presets_are_listed(capsys):
    assert cli.main(["presets"]) == 0
    out = capsys.readouterr().out
    assert "description" in out and "betavae" in out and "beta=4.0" in out
