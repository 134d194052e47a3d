"""A run's and a sweep's folder against a hostile user: a sweep never writes into a folder it did not make nor through
a symbolic link, the same name given twice or an empty list item is refused, files copied in from another run are
refused by the run's identity, and bad paths are one line before any work."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from safetensors.torch import load_file, save_file

from betavae import cli, sweep
from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.pictures import run_figures
from betavae.runs import Run
from betavae.training import fit, folder, resume

from .conftest import within

TINY = Config.of(hidden=(16,), latent_dim=3, batch_size=32, epochs=1, beta=1.0, seed=7, latent_map_size=40)
quiet = dict(log=lambda line: None)


def contents(root):
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def tiny_sweep(npz, runs, name, *extra):
    return ["sweep", "--beta", "1", "--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--latent-dim", "2",
            "--epochs", "1", "--runs", str(runs), "--name", name, *extra]


def test_a_sweep_never_writes_into_a_users_folder_nor_through_a_link(npz, tmp_path, capsys):
    user = tmp_path / "runs" / "u"
    user.mkdir(parents=True)
    (user / sweep.SUMMARY_CSV).write_text("my own summary")
    (user / sweep.FIGURE).write_bytes(b"my own figure")
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.txt").write_text("years of work")
    (tmp_path / "runs" / "link").symlink_to(precious)
    (tmp_path / "runs" / "file").write_text("a file")
    other = tmp_path / "runs" / "other-tool"  # a folder another tool made, with its own sweep.json and summaries
    other.mkdir()
    (other / sweep.MARK).write_text('{"method": "grid", "parameters": {"lr": [0.1]}}')
    (other / sweep.SUMMARY_CSV).write_text("their summary")
    damaged = tmp_path / "runs" / "damaged"
    damaged.mkdir()
    (damaged / sweep.MARK).write_text("not json")
    (damaged / sweep.SUMMARY_MD).write_text("a user's notes")
    before = contents(tmp_path)
    for name, message in (("u", "holds files but no betavae sweep"), ("link", "is a symbolic link"),
                          ("file", "is not a folder"), ("other-tool", "holds files but no betavae sweep"),
                          ("damaged", "holds files but no betavae sweep")):
        assert cli.main(tiny_sweep(npz, tmp_path / "runs", name)) == 1
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1
    assert contents(tmp_path) == before  # nothing written, nothing trained


def test_a_sweep_continues_the_folder_it_made_and_one_made_before_its_mark(npz, tmp_path, capsys):
    assert cli.main(tiny_sweep(npz, tmp_path, "s")) == 0
    assert json.loads((tmp_path / "s" / sweep.MARK).read_text())["format"] == 1
    assert cli.main(tiny_sweep(npz, tmp_path, "s")) == 0  # continued (its point finished: skipped)
    (tmp_path / "s" / sweep.MARK).unlink()  # a sweep from before the mark: summaries and point folders only
    assert cli.main(tiny_sweep(npz, tmp_path, "s")) == 0
    assert (tmp_path / "s" / sweep.MARK).is_file()
    (tmp_path / "e").mkdir()  # an empty folder is a new sweep's
    assert cli.main(tiny_sweep(npz, tmp_path, "e")) == 0


@pytest.mark.parametrize("argv, message", [
    (["--beta", "1,2", "--vary", "beta=3"], "beta is varied twice"),
    (["--vary", "lr=1e-3", "--vary", "lr=1e-2"], "lr is varied twice"),
    (["--vary", "latent-dim=2", "--vary", "latent_dim=3"], "latent_dim is varied twice"),
    (["--vary", "lr=1e-3,1e-2", "--lr", "5e-3"], "lr is both given (--lr) and varied"),
    (["--vary", "beta=1,,2"], "no empty value"),
    (["--beta", "1,"], "no empty value"),
    (["--beta", "1,1"], "asks for beta=1.0 with seed 0 twice"),
    (["--beta", "1,1.0"], "asks for beta=1.0 with seed 0 twice"),
    (["--beta", "1,2", "--seeds", "3,3"], "with seed 3 twice"),
])
def test_a_sweep_refuses_a_name_given_twice_or_an_empty_value(npz, tmp_path, capsys, argv, message):
    data = ["--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--epochs", "1"]
    assert cli.main(["sweep", *argv, *data, "--runs", str(tmp_path), "--name", "s"]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "s").exists()


def test_a_rerun_with_more_epochs_trains_the_finished_points_further_and_other_changes_are_refused(npz, tmp_path,
                                                                                                    capsys):
    """A sweep or `train --seeds` rerun with another --epochs, --lr or --time-budget never keeps the points trained
    with the old settings as if they had the new ones: more epochs train them further, a change that would train
    nothing is one line."""
    data = ["--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--latent-dim", "2", "--runs", str(tmp_path)]
    sweep_argv = ["sweep", "--beta", "1,4", "--seeds", "0", "--name", "s", *data]
    seeds_argv = ["train", "--seeds", "1,2", "--name", "k", "--no-figures", *data]
    for argv, points in ((sweep_argv, ("beta-1-seed-0", "beta-4-seed-0")), (seeds_argv, ("seed-1", "seed-2"))):
        assert cli.main([*argv, "--epochs", "1"]) == 0
        assert cli.main([*argv, "--epochs", "1", "--lr", "0.0005"]) == 1
        err = capsys.readouterr().err
        assert "has finished with lr 0.005; this rerun asks lr 0.0005, which would train nothing" in err, err
        assert cli.main([*argv, "--epochs", "2"]) == 0
        parent = tmp_path / argv[argv.index("--name") + 1]
        for point in points:
            assert [r["epoch"] for r in folder.read_metrics(parent / point)] == [0, 1, 2], point
            assert folder.read_status(parent / point)["state"] == "finished"
        weights = {p: (parent / p / folder.WEIGHTS).read_bytes() for p in points}
        assert cli.main([*argv, "--epochs", "2"]) == 0  # the same settings: nothing trained again
        assert weights == {p: (parent / p / folder.WEIGHTS).read_bytes() for p in points}


def two_runs(tmp_path, data):
    """Two runs of the same configuration (so alike in every file but their identity)."""
    return [fit(TINY, tmp_path / name, data=data, **quiet) for name in ("a", "b")]


def test_a_config_edited_by_hand_is_refused_by_every_reader_and_by_resume(tmp_path, npz, capsys):
    """β edited from 1 to 100 in config.json would be shown by the report and trained on by a resume, for a model
    trained at β = 1: the file's digest tells the edit, and every reader refuses it in one line."""
    assert cli.main(["train", "--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--latent-dim", "2",
                     "--epochs", "1", "--runs", str(tmp_path), "--name", "r"]) == 0
    capsys.readouterr()
    path = tmp_path / "r" / folder.CONFIG
    saved = json.loads(path.read_text())
    path.write_text(json.dumps({**saved, "config": {**saved["config"], "beta": {"beta": 100.0}}}))
    for argv in (["report"], ["curves"], ["sample"], ["train", "--epochs", "2", "--resume"]):
        assert cli.main([*argv, str(tmp_path / "r")]) == 1
        err = capsys.readouterr().err
        assert f"{path} was changed after betavae wrote it" in err and len(err.strip().splitlines()) == 1, err
    path.write_text(json.dumps(saved, indent=1))  # the same content, laid out otherwise: still the run's own
    assert cli.main(["train", "--epochs", "2", "--resume", str(tmp_path / "r")]) == 0
    assert json.loads(path.read_text())["config"]["epochs"] == 2  # a resume writes its change with a new digest


def test_a_config_copied_in_from_another_run_is_the_file_named(tmp_path, data):
    """metrics.jsonl and model.safetensors agree against config.json: config.json is the one copied in, and the
    error names it rather than sending the user to restore files that are the run's own."""
    a, b = two_runs(tmp_path, data)
    shutil.copyfile(b / folder.CONFIG, a / folder.CONFIG)
    for read in (lambda: resume(a, {"epochs": 2}, data=data, **quiet), lambda: Run.open(a, data=data).metrics):
        with pytest.raises(BetaVAEError, match=f"{a / folder.CONFIG} belongs to another run .*restore this run's own "
                                               f"{folder.CONFIG}"):
            read()


@pytest.mark.parametrize("name", [folder.METRICS_JSONL, folder.WEIGHTS])
def test_a_file_copied_in_from_another_run_is_refused(tmp_path, data, name):
    a, b = two_runs(tmp_path, data)
    shutil.copyfile(b / name, a / name)
    with pytest.raises(BetaVAEError, match=f"{name} belongs to another run .*copied in.*restore this run's own {name}"):
        resume(a, {"epochs": 2}, data=data, **quiet)
    reader = (lambda run: run.metrics) if name == folder.METRICS_JSONL else (lambda run: run.model)
    with pytest.raises(BetaVAEError, match=f"{name} belongs to another run"):
        reader(Run.open(a, data=data))
    assert folder.read_status(a)["epoch"] == 1  # nothing trained


def test_run_files_without_an_identity_still_read(tmp_path, data):
    a, _ = two_runs(tmp_path, data)
    lines = [json.loads(line) for line in (a / folder.METRICS_JSONL).read_text().splitlines()]
    assert {line.pop("run_id") for line in lines} == {folder.read_meta(a).run_id}
    (a / folder.METRICS_JSONL).write_text("".join(json.dumps(line) + "\n" for line in lines))  # as before run ids
    save_file(load_file(a / folder.WEIGHTS), a / folder.WEIGHTS, metadata={"epoch": "1"})
    run = Run.open(a, data=data)
    assert len(run.metrics) == 2 and run.model is not None
    resume(a, {"epochs": 2}, data=data, **quiet)
    assert [r["epoch"] for r in folder.read_metrics(a, folder.read_meta(a).run_id)] == [0, 1, 2]


def test_a_resume_refuses_a_folder_in_place_of_a_run_file_before_training(tmp_path, data):
    a = fit(TINY, tmp_path / "a", data=data, callbacks=[run_figures.TrainingFigures()], **quiet)
    (a / folder.LATENTS).unlink()
    (a / folder.LATENTS).mkdir()
    before = contents(a)
    with pytest.raises(BetaVAEError, match="latents.npz is a folder where betavae writes a file"):
        resume(a, {"epochs": 2}, data=data, callbacks=[run_figures.TrainingFigures()], **quiet)
    assert contents(a) == before  # not an epoch trained, not a file written
    (a / folder.LATENTS).rmdir()
    shutil.rmtree(a / folder.FIGURES)
    (a / folder.FIGURES).write_text("a file where the figures go")
    with pytest.raises(BetaVAEError, match="figures is a file where betavae keeps a folder"):
        resume(a, {"epochs": 2}, data=data, **quiet)


@pytest.mark.parametrize("argv, message", [
    (["train", "--dataset", "NPZ", "--data-dir", "/nonexistent"], "--data-dir /nonexistent is not a readable folder"),
    (["train", "--dataset", "NPZ", "--data-dir", "/dev/null"], "--data-dir /dev/null is not a readable folder"),
    (["train", "--dataset", "NPZ", "--data-dir", "FILE"], "is not a readable folder"),
    (["fetch", "NPZ", "--data-dir", "/nonexistent"], "is not a readable folder"),
    (["classifier", "train", "--dataset", "NPZ", "--val-size", "20", "--data-dir", "FILE"], "is not a readable folder"),
    (["disentanglement", "RUN", "--data-dir", "/dev/null"], "is not a readable folder"),
    (["sweep", "--beta", "1", "--dataset", "NPZ", "--data-dir", "/nonexistent"], "is not a readable folder"),
])
def test_a_bad_data_dir_is_refused_although_the_data_are_at_hand(npz, tmp_path, capsys, argv, message):
    (tmp_path / "notes.txt").write_text("not data")
    places = {"FILE": str(tmp_path / "notes.txt"), "RUN": str(tmp_path), "NPZ": str(npz)}
    argv = [places.get(a, a) for a in argv] + (["--epochs", "1"] if argv[0] in ("train", "sweep", "classifier") else [])
    with pytest.raises(SystemExit) as stop:
        cli.main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and message in err and err.count("\n") == 1


@pytest.mark.parametrize("argv, message", [
    (["--hidden", "16,,16"], "hidden got '16,,16', which is not a valid list of integers"),
    (["--hidden", "16,"], "hidden got '16,'"),
    (["--arch", "conv", "--channels", ",4"], "channels got ',4'"),
    (["--figure-epochs", "0,,2"], "figure_epochs got '0,,2'"),
    (["--latent-map-epochs", "0,1,"], "latent_map_epochs got '0,1,'"),
    (["--beta-warmup-steps", "1e30"], "beta_warmup_steps must be a number from 0 to 1e+12"),
    (["--objective", "capacity", "--capacity-steps", "1e30"], "capacity_steps must be a number from 0 to 1e+12"),
    (["--figure-epochs", "0,1e30"], "figure_epochs lists epochs, which are from 0 to 1e+06"),
    (["--beta", "1e300"], "beta must be a number from 0 to 1e+06, got 1e+300"),
    (["--objective", "capacity", "--gamma", "1e300"], "gamma must be a number from 0 to 1e+06"),
    (["--objective", "dipvae", "--lambda-od", "1e300"], "lambda_od must be a number from 0 to 1e+06"),
])
def test_empty_list_items_and_huge_step_counts_are_refused(npz, tmp_path, capsys, argv, message):
    assert cli.main(["train", "--dataset", str(npz), "--runs", str(tmp_path), "--name", "r", *argv]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "r").exists()


def test_a_file_given_as_a_run_is_said_to_be_no_run_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a run")
    for command in (["report"], ["curves"], ["evaluate"], ["train", "--epochs", "2", "--resume"]):
        assert cli.main([*command, str(tmp_path / "notes.txt")]) == 1
        err = capsys.readouterr().err
        assert "notes.txt is a file, not a run folder" in err and "does not exist" not in err


def test_a_run_name_that_is_a_users_file_is_said_to_be_a_file(npz, tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    (tmp_path / "runs" / "afile").write_text("mine")
    argv = ["train", "--dataset", str(npz), "--epochs", "1", "--runs", str(tmp_path / "runs"), "--name", "afile"]
    for extra in ([], ["--overwrite"]):
        assert cli.main([*argv, *extra]) == 1
        err = capsys.readouterr().err
        assert "afile is a file, not a run folder; choose another --name" in err and "read-only" not in err, err
        assert (tmp_path / "runs" / "afile").read_text() == "mine"


def test_a_bad_value_in_config_json_names_that_file_not_a_flag(npz, tmp_path, capsys):
    assert cli.main(["train", "--dataset", str(npz), "--epochs", "1", "--runs", str(tmp_path), "--name", "r",
                     "--hidden", "16", "--latent-dim", "2", "--val-size", "20"]) == 0
    saved = json.loads((tmp_path / "r" / "config.json").read_text())
    saved["config"]["latent_dim"] = True
    (tmp_path / "r" / "config.json").write_text(json.dumps(saved))
    capsys.readouterr()
    assert cli.main(["sample", str(tmp_path / "r")]) == 1
    err = capsys.readouterr().err
    assert "config.json is corrupt (latent_dim got True" in err and "--latent-dim" not in err, err


def test_classifier_train_never_overwrites_a_file_it_did_not_write(npz, tmp_path, capsys):
    thesis = tmp_path / "thesis.txt"
    thesis.write_text("years of work")
    argv = ["classifier", "train", "--dataset", str(npz), "--val-size", "20", "--epochs", "1"]
    assert cli.main([*argv, "--out", str(thesis)]) == 1
    assert "is a file betavae did not write" in capsys.readouterr().err and thesis.read_text() == "years of work"
    assert cli.main([*argv, "--out", str(tmp_path / "c.safetensors")]) == 0
    assert cli.main([*argv, "--out", str(tmp_path / "c.safetensors")]) == 0  # its own: replaced


def test_images_resized_under_a_finished_run_are_refused_in_one_line_by_read_commands(tmp_path, capsys):
    """The user's npz rewritten at another size after training: reconstruct names both sizes in one line instead of a
    matrix-shape traceback from the model."""
    import numpy as np
    from betavae import cli
    rng = np.random.default_rng(0)
    npz = tmp_path / "my.npz"
    np.savez(npz, images=(rng.random((96, 12, 12)) * 255).astype(np.uint8), labels=rng.integers(0, 3, 96))
    assert cli.main(["train", "--dataset", str(npz), "--epochs", "1", "--hidden", "16", "--latent-dim", "2",
                     "--val-size", "16", "--batch-size", "32", "--no-figures", "--runs", str(tmp_path / "runs"),
                     "--name", "m"]) == 0
    np.savez(npz, images=np.zeros((96, 14, 14), np.uint8), labels=np.zeros(96, np.int64))
    capsys.readouterr()
    assert cli.main(["reconstruct", str(tmp_path / "runs" / "m"), "--indices", "0"]) == 1
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "are now 1x14x14" in err and "trained on 1x12x12" in err


def test_training_into_a_folder_it_cannot_write_is_one_line(tmp_path, monkeypatch):
    """A run folder on a read-only mount (os.access says so even to root): resume is refused in one line, before the
    lock or any write."""
    from betavae.errors import BetaVAEError
    from betavae.training import lock
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    monkeypatch.setattr(lock.os, "access", lambda path, mode: False)
    with pytest.raises(BetaVAEError, match="cannot be written"):
        with lock.run_lock(run_dir, create=False):
            pass
    assert list(run_dir.iterdir()) == []


@pytest.mark.parametrize("resume_it", [False, True])
def test_a_link_inside_figures_is_refused_and_the_users_folder_untouched(npz, tmp_path, capsys, resume_it):
    argv = ["train", "--dataset", str(npz), "--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--val-size",
            "20", "--runs", str(tmp_path), "--name", "r"]
    assert cli.main(argv) == 0
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "epoch_000.png").write_text("my photo")
    shutil.rmtree(tmp_path / "r" / "figures" / "samples")
    (tmp_path / "r" / "figures" / "samples").symlink_to(mine)
    again = ["train", "--epochs", "2", "--resume", str(tmp_path / "r")] if resume_it else [*argv, "--overwrite"]
    assert cli.main(again) == 1
    assert "figures/samples is a symbolic link inside the run's figures/" in capsys.readouterr().err
    assert sorted(p.name for p in mine.iterdir()) == ["epoch_000.png"] and (mine / "epoch_000.png").read_text() == "my photo"


def test_a_fifo_at_the_lock_file_never_blocks_training(npz, tmp_path):
    import os

    argv = ["train", "--dataset", str(npz), "--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--val-size",
            "20", "--runs", str(tmp_path), "--name", "r"]
    assert cli.main(argv) == 0
    os.mkfifo(tmp_path / "r" / ".lock")
    with within(120):
        assert cli.main(["train", "--epochs", "2", "--resume", str(tmp_path / "r")]) == 0  # would block on the open


def test_names_longer_than_the_file_system_allows_are_one_line(npz, tmp_path, capsys):
    long = str(tmp_path / ("a" * 300))
    for argv in (["report", long], ["train", "--dataset", long + ".npz", "--runs", str(tmp_path)],
                 ["train", "--config", long, "--runs", str(tmp_path)]):
        assert cli.main(argv) == 1
        err = capsys.readouterr().err
        assert "betavae: error:" in err and len(err.strip().splitlines()) == 1, err


def test_a_deeply_nested_config_file_is_one_line(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text("a = " + "[" * 100_000 + "]" * 100_000)
    from betavae.config import load_file as load_config

    with pytest.raises(BetaVAEError, match="nests arrays or tables too deeply"):
        load_config(path)


def test_a_read_only_figures_folder_is_refused_before_the_work(npz, tmp_path, capsys, monkeypatch):
    import os

    argv = ["train", "--dataset", str(npz), "--epochs", "1", "--hidden", "16", "--latent-dim", "2", "--val-size",
            "20", "--runs", str(tmp_path), "--name", "r"]
    assert cli.main(argv) == 0
    access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode: access(path, mode) and Path(path).name != "figures")
    assert cli.main(["sample", str(tmp_path / "r")]) == 1
    assert "figures cannot be written (a read-only folder?)" in capsys.readouterr().err


@pytest.mark.parametrize("extra, message", [(["--seeds", "-1"], "seed must be from 0"),
                                            (["--backend", "bogus"], "invalid choice")])
def test_a_refused_sweep_leaves_no_folder_and_no_mark(npz, tmp_path, capsys, extra, message):
    argv = ["sweep", "--beta", "1,2", "--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--epochs", "1",
            "--runs", str(tmp_path), "--name", "s", *extra]
    try:
        assert cli.main(argv) == 1
    except SystemExit:  # refused by the argument parser: before anything too
        pass
    assert message in capsys.readouterr().err and not (tmp_path / "s").exists()


def test_messages_of_hostile_pass_3_name_the_problem_and_a_fix_that_works(npz, tmp_path, capsys):
    """A deleted best checkpoint is not "none yet"; a truncated checkpoint names the other one; a text file at
    latents.npz is not "pickled data"; a model's weights given as a classifier say so; labels of shape (N, 2) say
    their shape."""
    assert cli.main(["train", "--dataset", str(npz), "--val-size", "40", "--hidden", "16", "--latent-dim", "2",
                     "--epochs", "1", "--runs", str(tmp_path), "--name", "r"]) == 0
    run = tmp_path / "r"
    capsys.readouterr()
    (run / folder.LATENTS).write_text("my notes")
    np.savez(tmp_path / "pairs.npz", images=np.zeros((50, 8, 8), np.uint8), labels=np.zeros((50, 2), np.int64))
    cases = [(["latent-map", str(run)], 1, "not arrays numpy wrote"),
             (["evaluate", str(run), "--classifier", str(run / folder.WEIGHTS)], 1, "lacks a classifier's metadata"),
             (["train", "--dataset", str(tmp_path / "pairs.npz"), "--runs", str(tmp_path), "--name", "p"], 1,
              "labels under 'labels' have shape (50, 2); store one class number per image, shape (50,)")]
    for argv, code, message in cases:
        assert cli.main(argv) == code
        err = capsys.readouterr().err
        assert message in err and "pickled" not in err and len(err.strip().splitlines()) == 1, (argv, err)
    (run / folder.LATENTS).unlink()
    data = (run / folder.CHECKPOINT).read_bytes()
    (run / folder.CHECKPOINT).write_bytes(data[:len(data) // 2])
    assert cli.main(["train", "--epochs", "2", "--resume", str(run)]) == 1
    err = capsys.readouterr().err
    assert f"continue from the other checkpoint: betavae train --resume {run} --from-best" in err, err
    assert cli.main(["train", "--epochs", "2", "--resume", str(run), "--from-best"]) == 0  # the advice works
    (run / folder.BEST_CHECKPOINT).unlink()
    capsys.readouterr()
    assert cli.main(["train", "--epochs", "3", "--resume", str(run), "--from-best"]) == 1
    assert f"{run / folder.BEST_CHECKPOINT} is missing, though the run has trained epochs" in capsys.readouterr().err
