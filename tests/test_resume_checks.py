"""A resume does the right thing or refuses in one line, writing nothing: a refused command leaves no folder behind and
config.json as it was, a run stopped by its time budget can be extended, a checkpoint that is not the run's own is
refused, and the advice in error messages works."""

import dataclasses
import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from betavae import cli
from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.training import fit, folder, resume

from .conftest import synthetic_data, synthetic_images, within

TINY = Config.of(hidden=(16,), latent_dim=3, batch_size=32, epochs=1, beta=1.0, seed=6)
quiet = dict(log=lambda line: None)
TOO_SMALL = TINY.replace(arch="conv", channels=(8, 8, 8, 8, 8))  # five halvings of 12x12 images: refused


@pytest.fixture
def npz(tmp_path):
    """A data set on disk, for what the command line trains (it loads data by name)."""
    x, y = synthetic_images(200)
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    return tmp_path / "d.npz"


def test_a_refused_new_run_leaves_no_folder_behind(tmp_path, data, capsys):
    with pytest.raises(BetaVAEError, match="too small"):
        fit(TOO_SMALL, tmp_path / "runs" / "x", data=data, **quiet)
    assert not (tmp_path / "runs" / "x").exists()
    (tmp_path / "mine").mkdir()  # a folder the user made is the user's: it stays
    with pytest.raises(BetaVAEError, match="too small"):
        fit(TOO_SMALL, tmp_path / "mine", data=data, **quiet)
    assert (tmp_path / "mine").is_dir() and not list((tmp_path / "mine").iterdir())


def refused_without_a_write(run_dir, changes, message, **options):
    """Resume with `changes`, expect the refusal, and check that config.json was not rewritten."""
    before = (run_dir / folder.CONFIG).read_bytes()
    with pytest.raises(BetaVAEError, match=message):
        resume(run_dir, changes, **{"data": synthetic_data(), **quiet, **options})  # data=None: the run's own
    assert (run_dir / folder.CONFIG).read_bytes() == before


def test_a_refused_resume_leaves_config_json_as_it_was(tmp_path, data):
    run_dir = fit(TINY.replace(epochs=2), tmp_path / "r", data=data, **quiet)
    refused_without_a_write(run_dir, {"beta": 3}, "cannot change beta")
    refused_without_a_write(run_dir, {"epochs": 1}, "--epochs must be at least 2")
    refused_without_a_write(run_dir, {"lr": 1e-4}, "would train nothing")
    refused_without_a_write(run_dir, {"epochs": 3}, "changed since the run started", data=synthetic_data(n_train=160))
    state = torch.load(run_dir / folder.CHECKPOINT, weights_only=True)
    other = fit(TINY.replace(latent_dim=2), tmp_path / "other", data=data, **quiet)
    foreign_model = torch.load(other / folder.CHECKPOINT, weights_only=True)["model"]
    torch.save({**state, "model": foreign_model}, run_dir / folder.CHECKPOINT)
    refused_without_a_write(run_dir, {"epochs": 3}, "does not match this run's model")
    (run_dir / folder.CHECKPOINT).write_bytes(b"junk")
    refused_without_a_write(run_dir, {"epochs": 3}, "corrupt or not a betavae checkpoint")


def budget_stopped_run(tmp_path, data, **settings):
    run_dir = fit(TINY.replace(epochs=10_000, time_budget=0.2, **settings), tmp_path / "r", data=data, **quiet)
    status = folder.read_status(run_dir)
    assert status["state"] == "finished" and status["message"] == "time budget reached"
    return run_dir, status["epoch"]


def test_a_run_stopped_by_its_time_budget_is_extended_by_more_epochs(tmp_path, data):
    run_dir, done = budget_stopped_run(tmp_path, data)
    lines = []
    resume(run_dir, {"epochs": done + 1}, data=data, log=lines.append)
    status = folder.read_status(run_dir)
    assert (status["state"], status["epoch"], status["message"]) == ("finished", done + 1, "")
    assert "training on to epoch" in lines[0] and "without one" in lines[0]
    assert folder.read_meta(run_dir).config.time_budget == 0.0  # what config.json says is what trained
    assert [r["epoch"] for r in folder.read_metrics(run_dir)] == list(range(done + 2))


def test_time_budget_is_allowed_on_resume_and_must_exceed_the_time_spent(tmp_path, npz):
    run_dir, done = budget_stopped_run(tmp_path, None, dataset=str(npz), val_size=40)
    refused_without_a_write(run_dir, {"time_budget": 0.01}, "give more than that", data=None)
    refused_without_a_write(run_dir, {"lr": 1e-4}, r"would train nothing; add --epochs .* or a --time-budget above",
                            data=None)
    assert cli.main(["train", "--resume", str(run_dir), "--epochs", str(done + 1), "--time-budget", "3600",
                     "--no-figures"]) == 0
    assert folder.read_status(run_dir)["epoch"] == done + 1
    assert folder.read_meta(run_dir).config.time_budget == 3600


def test_a_checkpoint_copied_from_another_run_is_refused(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, **quiet)
    other = fit(TINY.replace(batch_size=16), tmp_path / "other", data=data, **quiet)
    (run_dir / folder.CHECKPOINT).write_bytes((other / folder.CHECKPOINT).read_bytes())
    refused_without_a_write(run_dir, {"epochs": 2}, "belongs to another run")
    state = torch.load(other / folder.CHECKPOINT, weights_only=True)
    del state["run_id"]  # runs from before run ids: the checkpoint's step gives it away
    torch.save(state, run_dir / folder.CHECKPOINT)
    folder.write_meta(run_dir, dataclasses.replace(folder.read_meta(run_dir), run_id=""))
    refused_without_a_write(run_dir, {"epochs": 2}, "holds epoch 1, step 12, which this run's metrics.jsonl")


def test_a_checkpoint_with_an_edited_epoch_or_an_older_one_is_refused(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, **quiet)
    older = (run_dir / folder.CHECKPOINT).read_bytes()
    resume(run_dir, {"epochs": 2}, data=data, **quiet)
    (run_dir / folder.CHECKPOINT).write_bytes(older)  # put back from an old backup: the run went on past it
    refused_without_a_write(run_dir, {"epochs": 3}, "holds epoch 1, step 6, which")
    state = torch.load(run_dir / folder.BEST_CHECKPOINT, weights_only=True)
    torch.save({**state, "epoch": 10**6}, run_dir / folder.CHECKPOINT)
    refused_without_a_write(run_dir, {"epochs": 3}, "holds epoch 1000000")
    torch.save({key: value for key, value in state.items() if key != "rng_torch"}, run_dir / folder.CHECKPOINT)
    refused_without_a_write(run_dir, {"epochs": 3}, r"is damaged \(rng_torch missing")


def test_a_deleted_weights_file_is_written_again_as_the_message_says(tmp_path, npz, capsys):
    run_dir = fit(TINY.replace(dataset=str(npz), val_size=40), tmp_path / "r", **quiet)
    weights = load_file(run_dir / folder.WEIGHTS)
    (run_dir / folder.WEIGHTS).unlink()
    for sampler in ("prior", "gmm"):  # every command that needs the weights gives the same repair
        assert cli.main(["sample", str(run_dir), "--n", "4", "--sampler", sampler]) == 1
        advice = f"write it again from the run's checkpoint with: betavae train --resume {run_dir}"
        assert advice in capsys.readouterr().err
    assert cli.main(["train", "--resume", str(run_dir)]) == 0
    again = load_file(run_dir / folder.WEIGHTS)
    assert all(torch.equal(weights[key], again[key]) for key in weights)


def test_a_flipped_byte_in_the_weights_is_refused_and_the_advice_repairs_it(tmp_path, npz, capsys):
    run_dir = fit(TINY.replace(dataset=str(npz), val_size=40), tmp_path / "r", **quiet)
    weights = {key: value.clone() for key, value in load_file(run_dir / folder.WEIGHTS).items()}  # not the mapped file
    raw = bytearray((run_dir / folder.WEIGHTS).read_bytes())
    raw[-3] ^= 0x01  # the last tensor's bytes: still a valid safetensors file, one weight slightly off
    (run_dir / folder.WEIGHTS).write_bytes(bytes(raw))
    assert cli.main(["sample", str(run_dir), "--n", "4"]) == 1
    err = capsys.readouterr().err
    assert "has changed since it was written" in err and len(err.strip().splitlines()) == 1
    (run_dir / folder.WEIGHTS).unlink()  # what the message says: delete it, then resume
    assert cli.main(["train", "--resume", str(run_dir)]) == 0
    again = load_file(run_dir / folder.WEIGHTS)
    assert all(torch.equal(weights[key], again[key]) for key in weights)
    assert cli.main(["sample", str(run_dir), "--n", "4"]) == 0


def test_damaged_metrics_advise_a_repair_that_keeps_every_epoch(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, **quiet)
    lines = (run_dir / folder.METRICS_JSONL).read_text().splitlines()
    (run_dir / folder.METRICS_JSONL).write_text(lines[0] + "\n" + lines[1][:-30] + "\n")
    with pytest.raises(BetaVAEError, match="damaged at line 2 .*; restore it from a backup, or write that line again "
                                           "from the same epoch's row of metrics.csv") as refusal:
        folder.read_metrics(run_dir)
    assert "delete" not in str(refusal.value)
    record = json.loads(lines[1])  # the repair the message describes: the row of metrics.csv holds these numbers
    row = (run_dir / folder.METRICS_CSV).read_text().splitlines()[2].split(",")
    assert str(record["val"]["neg_elbo"]) in row and str(record["step"]) in row


@pytest.mark.parametrize("kept", [1, 0])
def test_metrics_that_lost_their_last_lines_are_refused_by_every_reader(tmp_path, npz, kept, capsys):
    """A history cut short (lines lost, or emptied) is not drawn or resumed as if the run had ended there."""
    run_dir = fit(TINY.replace(dataset=str(npz), val_size=40, epochs=2), tmp_path / "r", **quiet)
    lines = (run_dir / folder.METRICS_JSONL).read_text().splitlines()
    (run_dir / folder.METRICS_JSONL).write_text("".join(line + "\n" for line in lines[:kept]))
    ends = "ends at epoch 0" if kept else "holds no epoch"
    for command in (["curves"], ["report"], ["train", "--epochs", "3", "--resume"]):
        assert cli.main([*command, str(run_dir)]) == 1
        err = capsys.readouterr().err
        assert f"metrics.jsonl {ends}, but status.json says the run completed epoch 2" in err, (command, err)
        assert len(err.strip().splitlines()) == 1
    assert json.loads((run_dir / folder.STATUS).read_text())["epoch"] == 2  # nothing rewritten


@pytest.mark.parametrize("order, where", [((0, 1, 1, 2), "line 3 (epoch 1 follows epoch 1"),
                                          ((0, 2, 1), "line 2 (epoch 2 follows epoch 0")])
def test_metrics_with_a_line_repeated_or_moved_are_refused_naming_it(tmp_path, npz, order, where, capsys):
    run_dir = fit(TINY.replace(dataset=str(npz), val_size=40, epochs=2), tmp_path / "r", **quiet)
    lines = (run_dir / folder.METRICS_JSONL).read_text().splitlines()
    (run_dir / folder.METRICS_JSONL).write_text("".join(lines[i] + "\n" for i in order))
    for command in (["curves"], ["train", "--epochs", "3", "--resume"]):
        assert cli.main([*command, str(run_dir)]) == 1
        err = capsys.readouterr().err
        assert f"metrics.jsonl is damaged at {where}" in err and len(err.strip().splitlines()) == 1, err


def test_a_read_command_on_a_run_being_trained_says_to_wait_not_to_resume(tmp_path, npz, capsys):
    import fcntl
    import os

    run_dir = fit(TINY.replace(dataset=str(npz), val_size=40), tmp_path / "r", **quiet)
    folder.write_status(run_dir, "running", 1, 5)
    assert cli.main(["report", str(run_dir)]) == 1
    assert f"finish it with: betavae train --resume {run_dir}" in capsys.readouterr().err  # nobody trains it
    trainer = os.open(run_dir, os.O_RDONLY | os.O_DIRECTORY)
    fcntl.flock(trainer, fcntl.LOCK_EX)  # as a training process holds it
    (run_dir / ".lock").write_text("12345")
    try:
        assert cli.main(["report", str(run_dir)]) == 1
        err = capsys.readouterr().err
        assert "trained now by process 12345; run this again when it has finished" in err and "--resume" not in err
    finally:
        os.close(trainer)


@pytest.mark.parametrize("name", [folder.CONFIG, folder.STATUS, folder.METRICS_JSONL, folder.CHECKPOINT, "latents.npz",
                                  "evaluation.json"])
def test_a_fifo_in_place_of_a_run_file_is_refused_instead_of_blocking(tmp_path, npz, name, capsys):
    import os

    run_dir = fit(TINY.replace(dataset=str(npz), val_size=40), tmp_path / "r", **quiet)
    (run_dir / name).unlink(missing_ok=True)
    os.mkfifo(run_dir / name)  # a read of it would wait for a writer forever
    for command in (["report", str(run_dir)], ["train", "--epochs", "2", "--resume", str(run_dir)]):
        with within(120):
            assert cli.main(command) == 1
        err = capsys.readouterr().err
        assert f"{name} is not a regular file (a FIFO" in err and len(err.strip().splitlines()) == 1
