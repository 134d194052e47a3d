"""The selection recipe: `betavae train --seeds` trains one run per seed, ranks them by UDR (as `betavae select`),
marks the best in the folder's udr.json and summary and shows each run its rank in its report; a rerun trains only
the seeds not finished, and bad input is refused in one line before anything is trained."""

import contextlib
import csv
import io
import json
import shutil

import numpy as np
import pytest

import betavae
from betavae import cli, sweep
from betavae.evaluation.udr import RESULT
from betavae.pictures.report import REPORT, write_report
from betavae.runs import Run

from .conftest import synthetic_images

SETTINGS = ["--val-size", "40", "--hidden", "16", "--latent-dim", "3", "--batch-size", "32", "--epochs", "1"]
RUN_FILES = ("model.safetensors", "checkpoint.pt", "metrics.jsonl")


def seeds_argv(npz, runs, seeds, *more):
    return ["train", "--seeds", seeds, "--dataset", str(npz), *SETTINGS, "--runs", str(runs), "--name", "dis", *more]


@pytest.fixture(scope="module")
def recipe(tmp_path_factory):
    """Seeds 1, 2, 3 trained with --jobs 1, figures and reports on: the folder and what the command printed."""
    root = tmp_path_factory.mktemp("recipe")
    x, y = synthetic_images(200, (12, 12))
    np.savez(root / "d.npz", images=x, labels=y)
    out = io.StringIO()
    with pytest.MonkeyPatch.context() as patch, contextlib.redirect_stdout(out):
        patch.chdir(root)
        patch.setenv("XDG_CACHE_HOME", str(root / "cache"))
        assert cli.main(seeds_argv(root / "d.npz", root / "runs", "1,2,3", "--jobs", "1")) == 0
    return root / "runs" / "dis", out.getvalue()


def ranking(parent):
    return json.loads((parent / RESULT).read_text())


def test_each_seed_is_trained_ranked_and_the_best_marked(recipe):
    parent, printed = recipe
    assert [Run.open(parent / f"seed-{seed}").config.seed for seed in (1, 2, 3)] == [1, 2, 3]
    result = ranking(parent)
    names = [record["run"].rsplit("/", 1)[-1] for record in result["ranking"]]
    assert sorted(names) == ["seed-1", "seed-2", "seed-3"] and [r["rank"] for r in result["ranking"]] == [1, 2, 3]
    assert result["best"] == result["ranking"][0]["run"]
    assert [r["udr"] for r in result["ranking"]] == sorted((r["udr"] for r in result["ranking"]), reverse=True)
    for record in result["ranking"]:  # each run's own udr.json agrees with the folder's
        own = json.loads((parent / record["run"].rsplit("/", 1)[-1] / RESULT).read_text())
        assert (own["rank"], own["udr"], own["of"]) == (record["rank"], record["udr"], 3)
    rows = list(csv.DictReader((parent / "summary.csv").open()))
    best = [row["run"] for row in rows if row["best"] == "best"]
    assert best == [names[0]] and {row["run"]: int(row["udr_rank"]) for row in rows} == dict(zip(names, (1, 2, 3)))
    assert (parent / "summary.md").read_text().splitlines()[0].endswith("| udr | udr_rank | best |")
    assert f"best: {result['best']}" in printed and printed.count("/seed-") >= 3


def test_each_report_shows_its_udr_and_rank(recipe):
    parent, _ = recipe
    result = ranking(parent)
    for record in result["ranking"]:
        name = record["run"].rsplit("/", 1)[-1]
        page = (parent / name / REPORT).read_text()
        assert f"UDR (lasso) {record['udr']:.3f}: rank {record['rank']} of 3 runs" in page
        assert ("the best is this run." in page) == (record["rank"] == 1)


def test_a_rerun_trains_only_the_seeds_not_finished(recipe, tmp_path, capsys):
    parent = tmp_path / "runs" / "dis"
    shutil.copytree(recipe[0], parent)
    before = {(seed, name): (parent / f"seed-{seed}" / name).stat().st_mtime_ns for seed in (1, 2, 3)
              for name in RUN_FILES}
    assert cli.main(seeds_argv(recipe[0].parent.parent / "d.npz", tmp_path / "runs", "1,2,3,4", "--no-figures")) == 0
    after = {key: (parent / f"seed-{key[0]}" / key[1]).stat().st_mtime_ns for key in before}
    assert after == before  # finished seeds kept as they were
    assert Run.open(parent / "seed-4").finished and len(ranking(parent)["ranking"]) == 4
    assert "rank" in capsys.readouterr().out
    assert " of 4 runs" in (parent / "seed-1" / REPORT).read_text()  # the existing reports are refreshed


def test_runs_side_by_side_share_the_cores(npz, tmp_path, monkeypatch):
    monkeypatch.setattr(sweep, "cores", lambda: 4)
    base = betavae.resolve(overrides={"dataset": str(npz), "hidden": "16", "latent_dim": "3", "batch_size": "32",
                                      "epochs": "1", "val_size": "40"})
    result = betavae.train_seeds(base, tmp_path / "pair", [5, 6], jobs=2, figures=False, log=lambda line: None)
    assert {record["run"].rsplit("/", 1)[-1] for record in result["ranking"]} == {"seed-5", "seed-6"}
    assert [Run.open(tmp_path / "pair" / f"seed-{s}").config.threads for s in (5, 6)] == [2, 2]  # 4 cores, 2 jobs
    assert not (tmp_path / "pair" / "seed-5" / REPORT).exists()  # no figures, no report
    with pytest.raises(betavae.BetaVAEError, match="asks for 6 threads on 4 cores"):
        sweep.share_cores(base.replace(threads=3), 2)


@pytest.mark.parametrize("argv, message", [
    (["--seeds", ""], "--seeds needs at least 2 seeds (got 0)"),
    (["--seeds", "3"], "UDR ranks runs against each other: --seeds needs at least 2 seeds (got 1)"),
    (["--seeds", "1,2,1"], "seed 1 is given twice in --seeds"),
    (["--seeds", "1,2", "--seed", "4"], "--seed cannot be used with --seeds"),
    (["--seeds", "1,2", "--resume", "runs/x"], "--resume cannot be used with --seeds"),
    (["--seeds", "1,2", "--jobs", "3", "--threads", "1"], "asks for 3 threads on 2 cores"),
    (["--jobs", "2"], "--jobs applies to --seeds LIST only"),
])
def test_bad_input_is_refused_in_one_line_before_any_training(argv, message, npz, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep, "cores", lambda: 2)
    assert cli.main(["train", *argv, "--dataset", str(npz), "--runs", str(tmp_path / "runs")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("betavae: error:") and "\n" not in err and message in err
    assert not (tmp_path / "runs").exists()


def test_the_report_escapes_udr_json_and_leaves_out_one_naming_another_run(recipe, tmp_path, capsys):
    run_dir = tmp_path / "seed-1"
    shutil.copytree(recipe[0] / "seed-1", run_dir)
    record = json.loads((run_dir / RESULT).read_text())
    hostile = "<script>alert(1)</script>"
    record.update(run=f"x/{run_dir.name}", best=f"x/{hostile}", variant=hostile, against={hostile: 0.5})
    (run_dir / RESULT).write_text(json.dumps(record))
    page = (write_report(Run.open(run_dir))).read_text()
    assert hostile not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert f"rank {record['rank']} of 3 runs" in page
    (run_dir / RESULT).write_text(json.dumps({**record, "run": "x/seed-9"}))
    page = (write_report(Run.open(run_dir))).read_text()
    assert "Unsupervised Disentanglement Ranking" not in page
    assert "ranks another run (seed-9)" in capsys.readouterr().err
    assert record["run_id"] == Run.open(run_dir).meta.run_id  # results name their run's id: a copy is told apart
    other = Run.open(recipe[0] / "seed-2").meta.run_id
    (run_dir / RESULT).write_text(json.dumps({**record, "run_id": other}))  # the same name, another run's file
    (run_dir / "evaluation.json").write_text(json.dumps({"run_id": other, "elbo": {"neg_elbo": 1.0}}))
    page = (write_report(Run.open(run_dir))).read_text()
    assert "Unsupervised Disentanglement Ranking" not in page and "<h2>Evaluation</h2>" not in page
    err = capsys.readouterr().err
    assert err.count(f"belongs to another run, run id {other[:12]}") == 2, err
    (run_dir / RESULT).unlink()
    for figures in ({"elbo": {"neg_elbo": float("nan")}}, {"elbo": {"neg_elbo": "NaN"}}, {"active_units": -7}):
        (run_dir / "evaluation.json").write_text(json.dumps(figures))  # damaged numbers: left out, with a warning
        page = (write_report(Run.open(run_dir))).read_text()
        assert "<h2>Evaluation</h2>" not in page and "evaluation.json is damaged" in capsys.readouterr().err


def test_a_rerun_with_other_settings_or_a_users_seed_folder_is_refused_before_any_training(recipe, tmp_path, capsys):
    """The runs already there are of other settings (or a folder holds a user's files): one line, nothing trained,
    rather than the old runs ranked and summarised as the new ones."""
    parent = tmp_path / "runs" / "dis"
    shutil.copytree(recipe[0], parent)
    npz = recipe[0].parent.parent / "d.npz"
    before = {p: p.stat().st_mtime_ns for p in parent.rglob("*") if p.is_file()}
    assert cli.main(seeds_argv(npz, tmp_path / "runs", "1,2,3,4", "--no-figures", "--beta", "8")) == 1
    assert "cannot change beta" in capsys.readouterr().err
    assert not (parent / "seed-4").exists()  # refused before the new seed was trained
    (parent / "seed-5").mkdir()
    (parent / "seed-5" / "notes.txt").write_text("mine")
    assert cli.main(seeds_argv(npz, tmp_path / "runs", "1,2,3,4,5", "--no-figures")) == 1
    assert "holds files but no run" in capsys.readouterr().err
    assert not (parent / "seed-4").exists()
    assert {p: p.stat().st_mtime_ns for p in before} == before
