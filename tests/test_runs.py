"""The Run object: a run folder opened once, its parts loaded on first use and only as far as needed."""

import json

import pytest

from betavae import data as datalib
from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.runs import Run
from betavae.training import fit, folder

TINY = Config.of(hidden=(16,), latent_dim=3, batch_size=32, epochs=1, beta=1.0, seed=2)


@pytest.fixture
def run_dir(tmp_path, data):
    return fit(TINY, tmp_path / "r", data=data, log=lambda line: None)


def test_config_json_is_read_once_across_open_a_split_and_sampling(run_dir, monkeypatch, data):
    """Counts real opens of config.json (open(), and pathlib's reads, which go through io.open)."""
    import builtins
    import io
    import os

    from betavae.pictures import run_figures

    opened = []
    real_open = builtins.open

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file).endswith(folder.CONFIG):
            opened.append(file)
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(datalib, "load_split", lambda name, data_dir, val_size, split, image_size: data.split(split))
    run = Run.open(run_dir)
    run.require_finished(), run.kl_per_dim, run.objective, run.model, run.metrics, run.describe_objective()
    run.split("val"), run.split("test")
    run_figures.sample(run, n=4, seed=0, sampler="gmm")
    assert len(opened) == 1
    assert run.config == TINY and run.image_shape == (1, 12, 12)


def test_the_last_epochs_kl_and_the_model(run_dir):
    run = Run.open(run_dir)
    assert run.kl_per_dim == folder.read_metrics(run_dir)[-1]["val"]["kl_per_dim"]
    assert run.model.latent_dim == 3 and not run.model.training
    assert run.figure_dir == run_dir / "figures"
    assert Run.open(run_dir / folder.WEIGHTS).path == run_dir  # a weights file opens its run


def test_only_the_split_asked_for_is_loaded(run_dir, monkeypatch, data):
    asked = []
    monkeypatch.setattr(datalib, "load_split", lambda name, data_dir, val_size, split, image_size: asked.append(split) or
                        data.split(split))
    monkeypatch.setattr(datalib, "load", lambda *a, **k: pytest.fail("the whole data set was loaded"))
    run = Run.open(run_dir)
    assert len(run.reference_split()) == len(data.val) and len(run.split("val")) == len(data.val)
    assert asked == ["val"]  # cached after the first load
    with pytest.raises(BetaVAEError, match="unknown split 'dev'"):
        run.split("dev")


def test_an_unfinished_run_is_refused_with_the_command_that_finishes_it(run_dir):
    folder.write_status(run_dir, "interrupted", 0, 1)
    with pytest.raises(BetaVAEError, match=f"finish it with: betavae train --resume {run_dir}"):
        Run.open(run_dir, finished=True)


# What config.json held before objectives owned their settings (format 0 and 1): every objective's knobs, flat.
FLAT_DEFAULTS = dict(objective="beta", beta=4.0, beta_warmup_steps=0, beta_start=0.0, gamma=1000.0, capacity_min=0.0,
                     capacity_max=25.0, capacity_steps=100_000, mi_weight=1.0, tc_weight=6.0, dimwise_weight=1.0,
                     tc_estimator="mss", discriminator_lr=1e-4, dip_type="i", dip_offdiagonal=10.0,
                     dip_diagonal=100.0)


@pytest.mark.parametrize("layout", [0, 1])
def test_runs_written_before_objectives_owned_their_settings_still_open(run_dir, layout):
    meta = json.loads((run_dir / folder.CONFIG).read_text())
    assert meta["format"] == folder.FORMAT and meta["config"]["beta"] == TINY.settings
    flat = {**{k: v for k, v in meta["config"].items() if k != "beta"}, **FLAT_DEFAULTS, **TINY.settings}
    old = {**{k: v for k, v in meta.items() if k != "sha256"}, "config": flat, "format": layout}  # nor a digest
    if layout == 0:
        del old["format"]
    (run_dir / folder.CONFIG).write_text(json.dumps(old))
    records = [json.loads(line) for line in (run_dir / folder.METRICS_JSONL).read_text().splitlines()]
    assert all(r["format"] == folder.FORMAT for r in records)
    (run_dir / folder.METRICS_JSONL).write_text("".join(json.dumps({k: v for k, v in r.items() if k != "format"}) +
                                                       "\n" for r in records))
    run = Run.open(run_dir)
    assert run.config == TINY and len(run.metrics) == 2


def test_a_run_from_a_newer_betavae_is_refused_in_one_line(run_dir):
    meta = json.loads((run_dir / folder.CONFIG).read_text())
    (run_dir / folder.CONFIG).write_text(json.dumps({**meta, "format": folder.FORMAT + 1}))
    with pytest.raises(BetaVAEError, match="newer than this betavae reads.*upgrade betavae"):
        Run.open(run_dir)


def test_config_json_names_the_objective_and_only_the_parameters_it_reads(tmp_path, data):
    capacity = TINY.replace(objective="capacity", gamma=50.0, capacity_max=5.0)
    run = Run.open(fit(capacity, tmp_path / "c", data=data, log=lambda line: None))
    meta = json.loads((run.path / folder.CONFIG).read_text())
    assert meta["objective"]["name"] == "capacity" and meta["objective"]["gamma"] == 50.0
    assert meta["config"]["capacity"] == {"gamma": 50.0, "capacity_min": 0.0, "capacity_max": 5.0,
                                          "capacity_steps": 100_000}
    assert "beta" not in meta["objective"] and "beta" not in run.objective
    assert "50 * |KL - C|" in run.describe_objective() and "beta" not in run.describe_objective()
