"""A user's files are sacred: training never follows a symbolic link out of the runs folder, --overwrite replaces a run
and only the run's own files, a trained run without its checkpoint is never trained anew over its results, and the
folder's lock holds although its .lock file is deleted."""

import pytest

from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.evaluation import evaluate, factors
from betavae.pictures import report, run_figures
from betavae.runs import Run
from betavae.training import fit, folder, resume
from betavae.training.lock import LOCK, run_lock

TINY = Config.of(hidden=(16,), latent_dim=3, batch_size=32, epochs=1, beta=1.0, seed=7, latent_map_size=40)
quiet = dict(log=lambda line: None)


def user_files(root):
    """A user's folder: a file and a subfolder with a file."""
    (root / "sub").mkdir(parents=True)
    (root / "thesis.txt").write_text("years of work")
    (root / "sub" / "photo.png").write_bytes(b"\x89PNG not really")
    return root


def contents(root):
    return {str(p.relative_to(root)): p.read_bytes() if p.is_file() else None for p in root.rglob("*")}


def test_training_never_follows_a_symlinked_run_folder(tmp_path, data):
    precious = user_files(tmp_path / "precious")
    before = contents(precious)
    (tmp_path / "runs").mkdir()
    link = tmp_path / "runs" / "sym"
    link.symlink_to(precious)
    for overwrite in (True, False):
        with pytest.raises(BetaVAEError, match="is a symbolic link"):
            fit(TINY, link, overwrite=overwrite, data=data, **quiet)
    assert contents(precious) == before  # nothing deleted, nothing written


def test_a_symlinked_run_folder_is_refused_even_when_it_points_at_a_run(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "real", data=data, **quiet)
    before = contents(run_dir)
    (tmp_path / "link").symlink_to(run_dir)
    with pytest.raises(BetaVAEError, match="is a symbolic link"):
        fit(TINY, tmp_path / "link", overwrite=True, data=data, **quiet)
    with pytest.raises(BetaVAEError, match="is a symbolic link"):
        resume(tmp_path / "link", {"epochs": 2}, data=data, **quiet)
    assert contents(run_dir) == before


def test_overwrite_refuses_a_folder_that_holds_no_run(tmp_path, data):
    user_dir = user_files(tmp_path / "userdir")
    before = contents(user_dir)
    for overwrite in (True, False):  # a new run is not written into a user's folder either
        with pytest.raises(BetaVAEError, match="holds files but no betavae run"):
            fit(TINY, user_dir, overwrite=overwrite, data=data, **quiet)
    assert contents(user_dir) == before


def test_overwrite_removes_the_runs_own_files_and_nothing_else(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, callbacks=[run_figures.TrainingFigures()], **quiet)
    user_files(run_dir / "mine")
    (run_dir / "notes.txt").write_text("my notes about this run")
    (run_dir / folder.EVALUATION).write_text("{}")  # as `betavae evaluate` leaves it
    users = {k: v for k, v in contents(run_dir).items() if k.startswith("mine") or k == "notes.txt"}
    old_weights = (run_dir / folder.WEIGHTS).read_bytes()
    fit(TINY.replace(seed=8), run_dir, overwrite=True, data=data, **quiet)  # no figures this time
    after = contents(run_dir)
    assert {k: v for k, v in after.items() if k in users} == users  # the user's files, untouched
    assert not (run_dir / folder.FIGURES).exists() and not (run_dir / folder.SAMPLERS).exists()
    assert not (run_dir / folder.EVALUATION).exists() and not (run_dir / folder.REPORT).exists()
    assert (run_dir / folder.WEIGHTS).read_bytes() != old_weights  # the new run's


def test_overwrite_keeps_a_users_files_inside_the_runs_own_folders(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, callbacks=[run_figures.TrainingFigures()], **quiet)
    before = contents(run_dir)
    ours = [k for k, v in before.items() if v is not None and k.split("/")[0] in folder.RUN_FOLDERS]
    assert any(k.startswith("figures/samples/epoch_") for k in ours) and any(k.startswith("samplers/") for k in ours)
    user_files(run_dir / folder.FIGURES / "my")
    (run_dir / folder.FIGURES / "notes.txt").write_text("which figure goes in the paper")
    (run_dir / folder.FIGURES / "samples" / "epoch_best.png").write_bytes(b"a user's pick")
    (run_dir / folder.SAMPLERS / "mine.safetensors").write_bytes(b"a sampler of my own")
    (run_dir / folder.TENSORBOARD).mkdir()
    (run_dir / folder.TENSORBOARD / "my-plot.csv").write_text("step,loss")
    users = {k: v for k, v in contents(run_dir).items() if v is not None and k not in before}
    assert len(users) == 6
    fit(TINY.replace(seed=8), run_dir, overwrite=True, data=data, **quiet)  # no figures this time
    after = contents(run_dir)
    assert {k: after.get(k) for k in users} == users  # every file of the user's, in every folder, untouched
    assert [k for k in ours if k in after] == []  # betavae's own figures and samplers went
    assert not (run_dir / folder.FIGURES / "reconstructions").exists()  # emptied, so removed


def test_every_file_a_run_writes_is_in_the_folders_list(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, callbacks=[run_figures.TrainingFigures()], **quiet)
    written = {entry.name for entry in run_dir.iterdir()} - {LOCK}
    assert {folder.FIGURES, folder.SAMPLERS, folder.REPORT, folder.LATENTS} <= written  # figures, report, samplers
    assert written <= set(folder.RUN_FILES) | set(folder.RUN_FOLDERS)
    # the names other modules write under are the folder module's
    assert {report.REPORT, evaluate.EVALUATION, factors.RESULT, run_figures.LATENTS} <= set(folder.RUN_FILES)
    run = Run.open(run_dir, data=data)  # and so are the figures the commands draw
    run_figures.reconstruct(run, [0, 1], "test")
    run_figures.interpolate(run, [(0, 1)], steps=3, method="spherical")
    run_figures.traverse(run)
    run_figures.latent_map(run, "tsne")
    for sampler, label in (("prior", None), ("gmm", None), ("class", 1)):
        run_figures.sample(run, 4, seed=0, sampler=sampler, digit=label)
    run_figures.sample(run, 4, seed=0, draw=True, sampler="class", components=2, digit=2)
    files = [p.relative_to(run_dir).as_posix() for p in run_dir.rglob("*") if p.is_file()]
    assert len(files) > 25 and [f for f in files if not folder.is_own_file(f)] == []
    assert not folder.is_own_file("figures/notes.png") and not folder.is_own_file("samplers/mine.safetensors")
    assert folder.is_own_file("figures/.curves.png.k2_x9abc.tmp") and not folder.is_own_file("figures/.notes.png.a.tmp")


def test_overwrite_keeps_files_named_like_betavaes_that_it_never_writes():
    """Only names betavae writes are its own: a user's samples_epoch_1.png, or an epoch past the limit, is not."""
    from betavae.samplers import registry
    for name in ("figures/samples_epoch_1.png", "figures/samples_mine.png", "figures/samples/epoch_12345678.png",
                 "figures/samples_gmm_x.png"):
        assert not folder.is_own_file(name), name
    for name in registry.NAMES:  # every sampler's figure is (the prior's is samples.png)
        assert folder.is_own_file(f"figures/{registry.get(name).figure_name(None)}.png"), name
        assert folder.is_own_file(f"figures/{registry.get(name).figure_name(3)}_drawn.png"), name


def test_a_trained_run_without_its_checkpoint_is_not_trained_anew(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, **quiet)
    (run_dir / folder.CHECKPOINT).unlink()
    kept = {name: (run_dir / name).read_bytes() for name in (folder.WEIGHTS, folder.BEST_CHECKPOINT,
                                                             folder.METRICS_JSONL)}
    with pytest.raises(BetaVAEError, match=r"has trained 1 epoch\(s\) but its checkpoint.pt is missing.*--from-best"):
        resume(run_dir, {"epochs": 2}, data=data, **quiet)
    assert {name: (run_dir / name).read_bytes() for name in kept} == kept
    resume(run_dir, {"epochs": 2}, from_best=True, data=data, **quiet)  # the advice works
    assert folder.read_status(run_dir)["epoch"] == 2
    (run_dir / folder.CHECKPOINT).unlink()
    (run_dir / folder.BEST_CHECKPOINT).unlink()
    with pytest.raises(BetaVAEError, match="restore checkpoint.pt from a backup, or train a new run"):
        resume(run_dir, {"epochs": 3}, data=data, **quiet)
    assert [r["epoch"] for r in folder.read_metrics(run_dir)] == [0, 1, 2]


def test_the_lock_holds_when_its_file_is_deleted(tmp_path, data):
    run_dir = fit(TINY, tmp_path / "r", data=data, **quiet)
    before = contents(run_dir)
    with run_lock(run_dir):
        (run_dir / LOCK).unlink()  # a user tidying up while the run trains
        with pytest.raises(BetaVAEError, match="is being trained by process"):
            fit(TINY, run_dir, overwrite=True, data=data, **quiet)
    assert {k: v for k, v in contents(run_dir).items() if k != LOCK} == {k: v for k, v in before.items() if k != LOCK}


@pytest.mark.parametrize("kind", ["symlink", "file"])
def test_figure_commands_never_write_through_a_figures_link_or_onto_a_file(tmp_path, data, kind):
    """`figures` replaced by a symbolic link to a user's folder (or by a file): every figure command refuses in one
    line before drawing, and the user's files are untouched."""
    from betavae import cli
    run_dir = fit(TINY, tmp_path / "r", data=data, **quiet)
    precious = user_files(tmp_path / "precious")
    (precious / "samples.png").write_bytes(b"the user's own picture")
    before = contents(precious)
    if (run_dir / folder.FIGURES).exists():
        for path in sorted((run_dir / folder.FIGURES).rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (run_dir / folder.FIGURES).rmdir()
    if kind == "symlink":
        (run_dir / folder.FIGURES).symlink_to(precious)
    else:
        (run_dir / folder.FIGURES).write_text("not a folder")
    for command in (["sample", "--n", "4"], ["reconstruct"], ["traverse"], ["curves"], ["report"]):
        assert cli.main([command[0], str(run_dir), *command[1:]]) == 1, command
    assert contents(precious) == before
