"""The command line: a thin layer; every user error is one line and a non-zero exit."""

import numpy as np
import pytest

from betavae import cli
from betavae.training import folder

from .conftest import synthetic_images


@pytest.mark.parametrize("argv, message", [
    (["train", "--beta", "-1"], "beta must be a number from 0 to 1e+06"),
    (["train", "--latent-dim", "0"], "latent_dim must be from 1 to 4096"),
    (["train", "--arch", "resnet"], "unknown arch 'resnet'"),
    (["train", "--epochs", "x"], "epochs got 'x'"),
    (["train", "--resume", "/nonexistent/run"], "does not exist"),
    (["train", "--config", "/nonexistent.toml"], "does not exist"),
    (["train", "--dataset", "/nonexistent.npz"], "does not exist"),
    (["evaluate", "/nonexistent/run"], "does not exist"),
    (["disentanglement", "/nonexistent/run"], "does not exist"),
    (["train", "--cuda-graphs", "flase"], "not a valid boolean (true or false); fix --cuda-graphs"),
    (["fetch", "nonsense"], "unknown dataset 'nonsense'"),
    (["sweep", "--beta", "1,4", "--preset", "capacity"], "the capacity objective has no setting beta"),
    (["sweep", "--vary", "gamma=10,100"], "the beta objective has no setting gamma"),
    (["sweep", "--beta", "1,4", "--preset", "dipvae"], "the dipvae objective has no setting beta"),
    (["sweep", "--vary", "gamma"], "--vary takes NAME=V1,V2"),
    (["sweep", "--seeds", "0"], "say what the sweep varies"),
    (["train", "--objective", "dipvae", "--gamma", "3"], "the dipvae objective has no setting gamma"),
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


def test_fetch_dsprites_goes_through_the_registry(monkeypatch, capsys):
    from betavae.data import dsprites

    monkeypatch.setattr(dsprites, "packed_images", lambda data_dir=None, log=None: np.zeros((7, 512), np.uint8))
    assert cli.main(["fetch", "dsprites"]) == 0
    assert capsys.readouterr().out.startswith("dsprites: 7 binary images of 64x64")


def test_sweep_varies_gamma_for_the_capacity_objective(npz, tmp_path, capsys):
    argv = ["sweep", "--vary", "gamma=1,200", "--preset", "capacity", "--capacity-max", "3", "--capacity-steps", "5",
            "--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--latent-dim", "2", "--epochs", "1",
            "--runs", str(tmp_path), "--name", "g"]
    assert cli.main(argv) == 0
    rows = (tmp_path / "g" / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("gamma,seed") and len(rows) == 3
    configs = [folder.read_meta(tmp_path / "g" / f"gamma-{g}-seed-0").config for g in (1, 200)]
    assert [c.settings["gamma"] for c in configs] == [1.0, 200.0]
    assert configs[0].settings["capacity_max"] == configs[1].settings["capacity_max"] == 3.0


def test_resume_remembers_no_figures_unless_told_to_draw(npz, tmp_path):
    common = ["--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--latent-dim", "2", "--batch-size", "32"]
    assert cli.main(["train", "--epochs", "1", *common, "--no-figures", "--runs", str(tmp_path), "--name", "r"]) == 0
    assert cli.main(["train", "--resume", str(tmp_path / "r"), "--epochs", "2"]) == 0
    assert not list((tmp_path / "r").rglob("*.png"))
    assert cli.main(["train", "--resume", str(tmp_path / "r"), "--epochs", "3", "--figures"]) == 0
    assert list((tmp_path / "r").rglob("*.png"))
    assert folder.read_meta(tmp_path / "r").figures


def test_sweep_varies_any_setting_and_field_as_a_grid(npz, tmp_path, capsys):
    argv = ["sweep", "--preset", "dipvae", "--vary", "lambda_od=1,2", "--vary", "latent-dim=2,3", "--dataset", str(npz),
            "--val-size", "40", "--hidden", "16", "--arch", "mlp", "--epochs", "1",
            "--runs", str(tmp_path), "--name", "grid"]
    assert cli.main(argv) == 0
    rows = (tmp_path / "grid" / "summary.csv").read_text().splitlines()
    assert rows[0].startswith("lambda_od,latent_dim,seed") and len(rows) == 5
    run = tmp_path / "grid" / "lambda_od-2_latent_dim-3-seed-0"
    config = folder.read_meta(run).config
    assert config.settings["lambda_od"] == 2.0 and config.latent_dim == 3


def test_channels_with_the_mlp_are_refused_not_ignored(npz, tmp_path, capsys):
    argv = ["train", "--dataset", str(npz), "--channels", "8,8", "--runs", str(tmp_path), "--name", "r"]
    assert cli.main(argv) == 1
    assert "--channels sets the widths of convolutions, which --arch mlp has none of" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_help_shows_each_objectives_settings_apart_and_defaults_as_typed(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "--objective factorvae: FactorVAE (Kim and Mnih 2018): --gamma: the weight of the total correlation" in out
    assert "(default 35.0)" in out and "--hidden N,N (default 400)" in out and "(400,)" not in out


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "RUN", "--importance-samples", "100000000"], "at most 100000"),
    (["evaluate", "RUN", "--repeats", "1000000000"], "at most 1000"),
    (["sample", "RUN", "--sampler", "gmm", "--components", "1000000000"], "at most 1000"),
    (["select", "A", "B", "--n", "1e12"], "expected a number"),
])
def test_counts_that_would_run_for_days_are_refused_before_any_work(argv, message, capsys):
    with pytest.raises(SystemExit):
        cli.main(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("argv, message", [
    (["fetch", "mnist", "--image-size", "32"], "resizes your own images only; mnist is kept as published"),
    (["fetch", "some/folder", "--image-size", "2"], "must be 0 (as stored) or from 4 to 1024, got 2"),
    (["classifier", "train", "--image-size", "1"], "must be 0 (as stored) or from 4 to 1024, got 1"),
])
def test_fetch_and_classifier_take_the_image_sizes_train_takes(argv, message, capsys):
    try:
        assert cli.main(argv) == 1
    except SystemExit:
        pass
    assert message in capsys.readouterr().err
