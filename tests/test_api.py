"""The one entry point: betavae.train resolves, names and watches a run exactly as `betavae train` does."""

import inspect
import json

import pytest
import torch
from safetensors.torch import load_file

import betavae
from betavae import api, cli
from betavae.config import DEFAULT_PRESET, preset
from betavae.training import folder
from betavae.training.resuming import RESUMABLE_CHANGES


SETTINGS = {"hidden": "16", "latent_dim": "2", "batch_size": "32", "epochs": "1", "val_size": "40"}


def test_api_and_cli_train_the_same_run(npz, tmp_path):
    argv = ["train", "--dataset", str(npz), "--runs", str(tmp_path), "--name", "cli"]
    for key, value in SETTINGS.items():
        argv += [f"--{key.replace('_', '-')}", value]
    assert cli.main(argv) == 0
    config = betavae.resolve(overrides={"dataset": str(npz), **SETTINGS})
    betavae.train(config, name="api", runs=tmp_path, progress=False, log=lambda line: None)
    saved = [json.loads((tmp_path / name / folder.CONFIG).read_text()) for name in ("cli", "api")]
    assert saved[0]["config"] == saved[1]["config"]
    assert saved[0]["config"]["lr_schedule"] == "cosine"  # the default preset, not Config.of()'s defaults
    weights = [load_file(tmp_path / name / folder.WEIGHTS) for name in ("cli", "api")]
    assert all(torch.equal(weights[0][key], weights[1][key]) for key in weights[0])
    for name in ("cli", "api"):  # the same callbacks: figures and report
        assert (tmp_path / name / "report.html").is_file()
        assert (tmp_path / name / "figures" / "interpolation.png").is_file()


def test_no_config_means_the_default_preset_and_a_default_name(npz, tmp_path, monkeypatch):
    captured = {}
    monkeypatch.setattr(api, "fit", lambda config, run_dir, **kw: captured.update(config=config, run_dir=run_dir))
    api.train(runs=tmp_path)
    assert captured["config"] == preset(DEFAULT_PRESET)
    assert captured["run_dir"].parent == tmp_path and captured["run_dir"].name.startswith("betavae-mnist-")
    api.train(preset="vae", runs=tmp_path)
    assert captured["config"] == preset("vae") and captured["run_dir"].name.startswith("vae-mnist-")
    api.train(preset("vae").replace(dataset=str(npz)), runs=tmp_path)
    assert captured["run_dir"].name.startswith("betavae-data-")


def test_figures_and_report_can_be_turned_off(npz, tmp_path):
    config = betavae.resolve(overrides={"dataset": str(npz), **SETTINGS})
    run = betavae.train(config, tmp_path / "bare", figures=False, progress=False, log=lambda line: None)
    assert not (run / "figures").exists() and not (run / "report.html").exists()
    assert (run / folder.WEIGHTS).is_file()


def test_train_and_resume_each_take_their_own_parameters(npz, tmp_path, capsys):
    config = betavae.resolve(overrides={"dataset": str(npz), **SETTINGS})
    run = betavae.train(config, tmp_path / "r", figures=False, progress=False, log=lambda line: None)
    betavae.resume(betavae.Run.open(run), epochs=2, log=lambda line: None)  # a Run, or its folder
    assert folder.read_status(run)["epoch"] == 2
    assert not list(run.rglob("*.png"))  # figures as the run did before: none
    with pytest.raises(TypeError, match="beta"):
        betavae.resume(run, beta=3)
    assert cli.main(["train", "--resume", str(run), "--beta", "3", "--no-figures"]) == 1
    assert "cannot change beta when resuming" in capsys.readouterr().err
    assert set(RESUMABLE_CHANGES) <= set(inspect.signature(betavae.resume).parameters)
    assert not {"resume", "changes", "from_best", "data_changed_ok"} & set(inspect.signature(betavae.train).parameters)


def test_a_run_is_opened_by_a_path_only():
    from betavae.errors import BetaVAEError
    for path in (None, 123):
        with pytest.raises(BetaVAEError, match="a run is opened by its folder's path"):
            betavae.Run.open(path)


def test_select_given_one_path_instead_of_a_list_says_so():
    from betavae.errors import BetaVAEError
    with pytest.raises(BetaVAEError, match=r"select ranks several runs: give a list of run folders"):
        betavae.select("runs/nb")


def test_a_device_as_dataset_is_not_called_missing(capsys):
    assert cli.main(["train", "--dataset", "/dev/zero", "--epochs", "1"]) == 1
    assert "/dev/zero is neither a folder nor a file" in capsys.readouterr().err
