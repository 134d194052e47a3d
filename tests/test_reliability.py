"""A run folder nobody can corrupt: one writer at a time, names inside the runs folder, divergence caught, no dead ends,
and every bad input ends as one line."""

import importlib
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from betavae import cli
from betavae.config import Config
from betavae.data import sources
from betavae.errors import BetaVAEError
from betavae.model import VAE
from betavae.runs import Run
from betavae.training import TrainingDiverged, fit, folder, resume
from betavae.training.lock import run_lock

from .conftest import synthetic_data, synthetic_images

TINY = Config.of(hidden=(16,), latent_dim=3, batch_size=32, epochs=1, beta=1.0, seed=5)
quiet = dict(log=lambda line: None)


def small(npz, *extra):
    return ["--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--latent-dim", "2", "--batch-size", "32",
            "--epochs", "1", "--no-figures", *extra]


def test_a_second_writer_is_refused_naming_the_process_that_holds_the_run(tmp_path, data):
    run_dir = tmp_path / "r"
    with run_lock(run_dir):
        with pytest.raises(BetaVAEError, match=f"being trained by process {os.getpid()}"):
            fit(TINY, run_dir, data=data, **quiet)
    assert not (run_dir / folder.CONFIG).exists()  # the refused writer wrote nothing
    fit(TINY, run_dir, data=data, **quiet)
    with run_lock(run_dir):
        with pytest.raises(BetaVAEError, match="being trained by process"):
            resume(run_dir, data=data, **quiet)


def test_a_killed_holder_leaves_no_stale_lock(tmp_path, data):
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from pathlib import Path; "
                               "from betavae.training.lock import run_lock\n"
                               "with run_lock(Path(sys.argv[1])):\n print('held', flush=True); time.sleep(60)",
                               str(tmp_path / "r")], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(BetaVAEError, match=f"process {holder.pid}"):
        fit(TINY, tmp_path / "r", data=data, **quiet)
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    fit(TINY, tmp_path / "r", data=data, **quiet)  # the OS released the lock with the process
    assert folder.read_status(tmp_path / "r")["state"] == "finished"


@pytest.mark.parametrize("name", ["../../x", "/abs/path/x", ".", "..", "a/b", "a\nb", "tab\there"])
def test_run_names_stay_inside_the_runs_folder(name, npz, tmp_path, capsys):
    runs = tmp_path / "inside" / "runs"
    assert cli.main(["train", *small(npz, "--runs", str(runs), "--name", name)]) == 1
    err = capsys.readouterr().err
    assert "must be a single folder name" in err and "--runs" in err and err.count("\n") == 1
    assert not (tmp_path / "x").exists() and not (runs.parent / "x").exists()


def test_divergence_stops_the_run_and_keeps_the_good_weights(tmp_path, data):
    run_dir = tmp_path / "r"
    fit(TINY, run_dir, data=data, **quiet)
    good = load_file(run_dir / folder.WEIGHTS)
    with pytest.raises(TrainingDiverged, match=r"negative ELBO reached .* times the untrained.*--lr"):
        resume(run_dir, {"epochs": 8, "lr": 5.0}, data=data, **quiet)
    status = folder.read_status(run_dir)
    assert status["state"] == "failed" and "--lr" in status["message"]
    best = folder.load_checkpoint(run_dir, folder.BEST_CHECKPOINT)
    assert best["epoch"] >= 1 and all(torch.isfinite(v).all() for v in best["model"].values())
    last = folder.read_metrics(run_dir)[-1]["epoch"]
    said = []
    resume(run_dir, {"epochs": 3, "lr": 1e-3}, from_best=True, data=data, log=said.append)
    rollback = f"continuing from the best checkpoint, epoch {best['epoch']}: what epochs {best['epoch'] + 1} to {last}"
    assert any(rollback in line for line in said) == (last > best["epoch"])  # what is replaced is said
    assert folder.read_status(run_dir)["state"] == "finished"
    assert good.keys() == load_file(run_dir / folder.WEIGHTS).keys()


def test_a_rollback_to_fewer_epochs_says_which_epochs_it_drops(tmp_path, data):
    """--from-best --epochs 2 on a 4-epoch run whose best is epoch 1 trains epoch 2 again and drops 3 and 4: said so,
    not "epochs 2 to 4 are trained again"."""
    run_dir = tmp_path / "r"
    fit(TINY, run_dir, data=data, **quiet)
    shutil.copyfile(run_dir / folder.CHECKPOINT, tmp_path / "epoch-1.pt")
    resume(run_dir, {"epochs": 4}, data=data, **quiet)
    shutil.copyfile(tmp_path / "epoch-1.pt", run_dir / folder.BEST_CHECKPOINT)  # as if epoch 1 had been the best
    said = []
    resume(run_dir, {"epochs": 2}, from_best=True, data=data, log=said.append)
    assert any("epochs 2 to 4 trained is replaced: the run now ends at epoch 2 (--epochs), so epoch 2 trained again, "
               "and epochs 3 to 4 dropped" in line for line in said), said
    assert [r["epoch"] for r in folder.read_metrics(run_dir)] == [0, 1, 2]


def test_a_run_that_died_before_its_first_checkpoint_can_be_resumed_or_replaced(tmp_path, data, npz, capsys):
    run_dir = tmp_path / "r"
    fit(TINY, run_dir, data=data, **quiet)
    for name in (folder.CHECKPOINT, folder.BEST_CHECKPOINT, folder.WEIGHTS, folder.METRICS_JSONL, folder.STATUS):
        (run_dir / name).unlink()
    resume(run_dir, data=data, **quiet)  # from step 0 with the saved configuration
    assert [r["epoch"] for r in folder.read_metrics(run_dir)] == [0, 1]
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r")]) == 1
    assert "--overwrite" in capsys.readouterr().err
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r", "--overwrite")]) == 0
    assert Run.open(run_dir).config.dataset == str(npz)


@pytest.mark.parametrize("size, ok, message", [
    ((12, 12), True, "changed since the run started"),  # the same shape: --data-changed-ok lets it continue
    ((16, 16), False, "are now 1x16x16, but"),  # another shape: no model can take it, whatever the flag
])
def test_a_resume_notices_changed_data(tmp_path, npz, capsys, size, ok, message):
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r")]) == 0
    x, y = synthetic_images(200, size, seed=9)
    np.savez(npz, images=x, labels=y)
    assert cli.main(["train", "--resume", str(tmp_path / "r"), "--epochs", "2", "--no-figures"]) == 1
    assert message in capsys.readouterr().err
    changed_ok = cli.main(["train", "--resume", str(tmp_path / "r"), "--epochs", "2", "--no-figures",
                           "--data-changed-ok"])
    assert changed_ok == (0 if ok else 1)
    commands = json.loads((tmp_path / "r" / folder.CONFIG).read_text())["commands"]
    assert len(commands) == (2 if ok else 1)  # the history is kept (a refused resume writes none)


def test_commands_that_read_a_split_warn_when_it_changed(tmp_path, npz, capsys):
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r")]) == 0
    Run.open(tmp_path / "r").split("test")
    assert "warning" not in capsys.readouterr().err
    x, y = synthetic_images(200, (12, 12), seed=9)
    np.savez(npz, images=x, labels=y)
    assert cli.main(["sample", str(tmp_path / "r"), "--sampler", "gmm", "--n", "4"]) == 0
    assert "the train split of" in capsys.readouterr().err


def test_a_replaced_cache_with_a_recomputed_checksum_is_refused(tmp_path):
    images = np.zeros((60000, 28, 28), np.uint8)
    fake = sources.RawData(images, np.zeros(60000, np.int64), images[:10000], np.zeros(10000, np.int64))
    path = tmp_path / "mnist.npz"
    sources.write_cache(fake, path)  # stores the fake's own checksum beside it
    assert sources.read_cache(path).checksum() == fake.checksum()
    with pytest.raises(BetaVAEError, match="fails its checksum"):
        sources.read_cache(path, sources.MNIST.decoded_sha256)


def test_stale_temporaries_of_a_killed_write_are_removed(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, **quiet)
    (run_dir / ".checkpoint.pt.abc.tmp").write_bytes(b"half")
    resume(run_dir, {"epochs": 2}, data=data, **quiet)
    assert not list(run_dir.rglob("*.tmp"))


@pytest.mark.parametrize("argv, message", [
    (["train", "--hidden", "1000000000"], "hidden must list layer sizes from 1 to 65536"),
    (["train", "--latent-dim", "9223372036854775807"], "latent_dim must be from 1 to 4096"),
    (["train", "--seed", str(2**64)], "seed must be from 0 to"),
    (["train", "--threads", "100000"], "threads must be from 0 to 1024"),
    (["train", "--objective", "capacity", "--capacity-min", "30", "--capacity-max", "1"],
     "capacity_min (30.0) is above capacity_max"),
    (["train", "--cuda-graphs", "maybe"], "not a valid boolean"),
    (["train", "--epochs", "1", "--from-best"], "apply to --resume RUN only"),
    (["interpolate", "RUN", "--pairs", "0"], "pairs look like 0:1,2:3"),
    (["sample", "RUN", "--n", "1000000000"], "at most 10000"),
    (["evaluate", "RUN", "--repeats", "0"], "must be at least 1"),
    (["evaluate", "RUN", "--importance-samples", "-1"], "must be at least 0"),
    (["traverse", "RUN", "--span", "inf"], "must be at least"),
    (["traverse", "RUN", "--span", "1e300"], "and at most 1000"),
    (["sample", "RUN", "--seed", str(2**63)], "and at most 4.29497e+09"),
    (["evaluate", "RUN", "--seed", "-1"], "must be at least 0"),
    (["classifier", "train", "--val-size", "-5"], "must be at least 1"),
    (["classifier", "train", "--epochs", "0"], "must be at least 1"),
    (["classifier", "train", "--dataset", "RUN", "--out", "/"], "must name a file in an existing folder"),
])
def test_bad_input_is_one_line(argv, message, npz, capsys):
    argv = [str(npz) if a == "RUN" else a for a in argv]
    if argv[0] == "train":
        argv += ["--dataset", str(npz), "--val-size", "40", "--epochs", "1", "--runs", str(npz.parent / "runs")]
    try:
        code = cli.main(argv)
    except SystemExit as exit:  # usage errors, from argparse
        code = exit.code
    assert code in (1, 2)
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def one_line_error(argv, capsys) -> str:
    try:
        code = cli.main(argv)
    except SystemExit as exit:
        code = exit.code
    err = capsys.readouterr().err
    assert code in (1, 2) and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_bad_data_and_files_are_one_line(tmp_path, capsys):
    np.savez(tmp_path / "tiny.npz", images=np.zeros((20, 1, 1), np.uint8))
    assert "too small" in one_line_error(["train", "--dataset", str(tmp_path / "tiny.npz"), "--arch", "conv",
                                          "--val-size", "2", "--runs", str(tmp_path)], capsys)
    x, _ = synthetic_images(20)
    np.savez(tmp_path / "names.npz", images=x, labels=np.array(["cat"] * 20))
    assert "not integers" in one_line_error(["train", "--dataset", str(tmp_path / "names.npz"), "--val-size", "2",
                                             "--runs", str(tmp_path)], capsys)
    assert "not a regular file" in one_line_error(["train", "--config", str(tmp_path)], capsys)


def test_a_two_image_data_set_trains_and_finishes(tmp_path):
    x, y = synthetic_images(2)
    np.savez(tmp_path / "two.npz", images=x, labels=y)
    assert cli.main(["train", "--dataset", str(tmp_path / "two.npz"), "--val-size", "0", "--epochs", "1",
                     "--hidden", "8", "--latent-dim", "2", "--runs", str(tmp_path), "--name", "r"]) == 0
    run = Run.open(tmp_path / "r", finished=True)
    assert (run.path / "report.html").is_file() and (run.figure_dir / "latent_map_pca.png").is_file()


def test_damaged_metrics_are_one_line_everywhere(tmp_path, npz, capsys):
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r")]) == 0
    capsys.readouterr()
    metrics = tmp_path / "r" / folder.METRICS_JSONL
    metrics.write_text(metrics.read_text()[:-40])
    for argv in (["curves", str(tmp_path / "r")], ["report", str(tmp_path / "r")],
                 ["traverse", str(tmp_path / "r")], ["train", "--resume", str(tmp_path / "r"), "--epochs", "2"]):
        assert "damaged at line 2" in one_line_error(argv, capsys)


def test_a_full_disk_fails_the_run_in_one_line(tmp_path, data, monkeypatch):
    def full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(folder, "save_checkpoint", full)
    with pytest.raises(BetaVAEError, match="No space left on device.*betavae train --resume"):
        fit(TINY, tmp_path / "r", data=data, **quiet)
    status = folder.read_status(tmp_path / "r")
    assert status["state"] == "failed" and "No space left" in status["message"]


@pytest.mark.parametrize("write", ["write_metrics", "save_weights", "save_checkpoint", "best checkpoint"])
def test_the_advised_resume_works_after_a_disk_fills_at_any_write_of_an_epoch(tmp_path, data, monkeypatch, write):
    """Whichever of an epoch's files the full disk stops, the run's files stay consistent: `train --resume` (the
    advice) trains that epoch again and finishes, with one metrics record per epoch."""
    from betavae.training import trainer, weights
    module = {"write_metrics": folder, "save_weights": weights}.get(write, folder)
    name = write if write != "best checkpoint" else "save_checkpoint"
    real = getattr(module, name)

    def full_at_epoch_2(run_dir, *args, **kwargs):
        epoch = json.loads((run_dir / folder.STATUS).read_text())["epoch"] if (run_dir / folder.STATUS).exists() else 0
        best = len(args) > 1 and args[1] == folder.BEST_CHECKPOINT
        if epoch >= 1 and (write != "best checkpoint" or best):
            raise OSError(28, "No space left on device")
        return real(run_dir, *args, **kwargs)

    monkeypatch.setattr(module, name, full_at_epoch_2)
    with pytest.raises(BetaVAEError, match="No space left on device.*betavae train --resume"):
        fit(TINY.replace(epochs=2), tmp_path / "r", data=data, **quiet)
    monkeypatch.setattr(module, name, real)
    resume(tmp_path / "r", data=data, **quiet)
    assert folder.read_status(tmp_path / "r")["state"] == "finished"
    assert [r["epoch"] for r in folder.read_metrics(tmp_path / "r")] == [0, 1, 2]


@pytest.mark.parametrize("error", [MemoryError(), RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried "
                                                                  "to allocate 1929379840 bytes"),
                                   RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")])
def test_running_out_of_memory_is_one_line_with_what_to_lower(tmp_path, npz, monkeypatch, error, capsys):
    from betavae.training.trainer import Trainer

    def too_large(*args, **kwargs):
        raise error

    monkeypatch.setattr(Trainer, "_train_step", too_large)
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r")]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("betavae: error: out of memory") and "--batch-size" in err[-1], err
    assert "Traceback" not in "".join(err) and folder.read_status(tmp_path / "r")["state"] == "failed"


def test_sampling_needs_no_training_data(tmp_path, npz, capsys):
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r")]) == 0
    npz.unlink()
    assert cli.main(["sample", str(tmp_path / "r"), "--n", "4"]) == 0
    assert "samples.png" in capsys.readouterr().out


def test_the_report_names_missing_figures(tmp_path, npz, capsys):
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r")]) == 0  # --no-figures
    assert cli.main(["report", str(tmp_path / "r")]) == 0
    assert "lacks curves.png" in capsys.readouterr().err


def test_a_refused_overwrite_leaves_the_old_run_whole(tmp_path, npz, capsys):
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r")]) == 0
    before = sorted(p.name for p in (tmp_path / "r").iterdir())
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r", "--overwrite", "--arch", "conv",
                                     "--channels", "8,8,8,8,8")]) == 1  # 12x12 images: too small for five
    assert "too small" in capsys.readouterr().err
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == before
    assert Run.open(tmp_path / "r", finished=True).config.arch == "mlp"


def test_a_run_on_a_moved_png_folder_still_opens(tmp_path, capsys, monkeypatch):
    from PIL import Image

    x, _ = synthetic_images(60)
    (tmp_path / "pngs").mkdir()
    for i, image in enumerate(x):
        Image.fromarray(image).save(tmp_path / "pngs" / f"{i}.png")
    monkeypatch.chdir(tmp_path)
    assert cli.main(["train", "--dataset", "pngs", "--val-size", "10", "--epochs", "1", "--hidden", "8",
                     "--latent-dim", "2", "--no-figures", "--runs", "runs", "--name", "r"]) == 0
    assert Run.open("runs/r").config.dataset == str(tmp_path / "pngs")  # stored absolute
    (tmp_path / "pngs").rename(tmp_path / "moved")
    capsys.readouterr()
    assert cli.main(["curves", "runs/r"]) == 0  # reading the run needs no data
    capsys.readouterr()
    assert "dataset folder" in one_line_error(["traverse", "runs/r"], capsys)


def test_figure_commands_on_a_run_without_validation_images(tmp_path, npz, capsys):
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r"), "--val-size", "0"]) == 0
    assert cli.main(["traverse", str(tmp_path / "r"), "--index", "3"]) == 0
    assert cli.main(["interpolate", str(tmp_path / "r"), "--pairs", "0:1"]) == 0


def test_a_sweep_point_killed_before_its_first_checkpoint_is_resumed(tmp_path, data, monkeypatch):
    from betavae import sweep

    base = TINY.replace(dataset="mnist")
    point = sweep.points(base, {"beta": [2.0]}, [0])[0]
    run_dir = tmp_path / point.name
    fit(base.replace(beta=2.0, seed=0), run_dir, data=data, **quiet)
    for name in (folder.CHECKPOINT, folder.BEST_CHECKPOINT, folder.STATUS, folder.WEIGHTS, folder.METRICS_JSONL):
        (run_dir / name).unlink()  # killed before the first checkpoint: config.json alone
    setup = importlib.import_module("betavae.training.fit")  # the module (the package's `fit` is its function)
    monkeypatch.setattr(setup, "load_data", lambda config, context: data)
    sweep.run_point(base, str(tmp_path), point)
    assert folder.read_status(run_dir)["state"] == "finished"


def test_a_damaged_sampler_file_is_refused_in_one_line(tmp_path):
    from betavae import samplers

    (tmp_path / "s.safetensors").write_bytes(b"not a sampler")
    with pytest.raises(BetaVAEError, match="is not a valid betavae sampler"):
        samplers.load(tmp_path / "s.safetensors", "digest", 3)


def test_resume_cannot_shrink_a_finished_run(tmp_path, data):
    run_dir = fit(TINY.replace(epochs=2), tmp_path / "r", data=data, **quiet)
    with pytest.raises(BetaVAEError, match="has trained 2 epochs already; --epochs must be at least 2"):
        resume(run_dir, {"epochs": 1}, data=data, **quiet)
    assert json.loads((run_dir / folder.STATUS).read_text())["epochs"] == 2  # nothing rewritten


@pytest.mark.parametrize("text", ["[]", '"x"', "null", '{"state": 5}'])
def test_a_status_file_that_is_not_a_status_reads_as_unknown(tmp_path, data, text):
    run_dir = fit(TINY, tmp_path / "r", data=data, **quiet)
    (run_dir / folder.STATUS).write_text(text)
    assert folder.read_status(run_dir)["state"] == "unknown"
    with pytest.raises(BetaVAEError, match="is unknown.*betavae train --resume"):
        Run.open(run_dir, finished=True)


def test_changing_the_lr_of_a_finished_run_without_more_epochs_is_refused(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, **quiet)
    with pytest.raises(BetaVAEError, match="would train nothing; add --epochs"):
        resume(run_dir, {"lr": 1e-4}, data=data, **quiet)


def test_odd_run_names_and_sweep_values_are_refused(npz, tmp_path, capsys):
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "é" * 128)]) == 1  # 256 bytes
    assert "is 256 bytes, more than a folder name may be (255)" in capsys.readouterr().err
    for name in ("", " ", ".hidden"):
        assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", name)]) == 1
        assert "must be a single folder name" in capsys.readouterr().err
    argv = ["sweep", "--vary", "gamma=1,nan", "--preset", "capacity", "--runs", str(tmp_path), "--name", "s"]
    assert cli.main(argv) == 1
    assert "gamma must be a number from 0 to 1e+06, got nan" in capsys.readouterr().err and not (tmp_path / "s").exists()
    from betavae import sweep

    with pytest.raises(BetaVAEError, match="asks for beta=1.0 with seed 0 twice"):  # one point, asked for twice
        sweep.points(TINY, {"beta": ["1", "1.0", "2"]}, [0])
    points = sweep.points(TINY, {"beta": ["1", "2"]}, [0])  # each value resolved to its type
    assert [p.changes for p in points] == [(("beta", 1.0),), (("beta", 2.0),)] and points[0].name == "beta-1-seed-0"


@pytest.mark.parametrize("command", [["evaluate", "--samples", "10", "--importance-samples", "0", "--repeats", "1",
                                      "--no-probes"], ["sample"], ["report"], ["reconstruct"], ["latent-map"]])
def test_a_read_only_run_folder_is_refused_before_any_work(tmp_path, npz, capsys, monkeypatch, command):
    assert cli.main(["train", *small(npz, "--runs", str(tmp_path), "--name", "r")]) == 0
    run_dir, _ = tmp_path / "r", capsys.readouterr()
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: False if Path(path) == run_dir else real_access(path, mode))
    encoded = []
    monkeypatch.setattr(VAE, "posterior_means", lambda *a, **k: encoded.append(1))
    before = sorted(p.name for p in run_dir.rglob("*"))
    assert cli.main([command[0], str(run_dir), *command[1:]]) == 1
    err = capsys.readouterr().err
    assert "cannot be written (a read-only folder?)" in err and err.count("\n") == 1
    assert not encoded and sorted(p.name for p in run_dir.rglob("*")) == before  # no work done, nothing written


@pytest.mark.parametrize("option", [["--runs", "elsewhere"], ["--name", "y"]])
def test_options_a_resume_would_ignore_are_refused(option, capsys):
    assert cli.main(["train", "--resume", "runs/x", *option]) == 1
    assert f"{option[0]} cannot be used with --resume" in capsys.readouterr().err


def test_the_original_command_repeated_with_resume_continues_the_run(npz, tmp_path):
    argv = ["train", "--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--latent-dim", "2",
            "--runs", str(tmp_path)]
    assert cli.main([*argv, "--epochs", "1", "--name", "r"]) == 0
    assert cli.main([*argv, "--epochs", "2", "--resume", str(tmp_path / "r")]) == 0  # its --runs is the run's folder
    assert folder.read_status(tmp_path / "r")["epoch"] == 2
