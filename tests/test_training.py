import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

import betavae
from betavae.config import Config
from betavae.data import Data, Split
from betavae.errors import BetaVAEError
from betavae.training import Trainer, TrainingDiverged, TrainingInterrupted, fit, folder, resume


TINY = Config.of(dataset="mnist", hidden=(32,), latent_dim=4, batch_size=32, epochs=2, beta=1.0, seed=3)


def weights(run_dir):
    return load_file(run_dir / folder.WEIGHTS)


def assert_same_weights(a, b):
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        assert torch.equal(wa[key], wb[key]), key


def test_one_epoch_smoke(tmp_path, data):
    run = fit(TINY.replace(epochs=1), tmp_path / "r", data=data, log=lambda line: None)
    records = folder.read_metrics(run)
    assert [r["epoch"] for r in records] == [0, 1]
    assert records[1]["val"]["loss"] < records[0]["val"]["loss"]
    assert len(records[1]["train"]["kl_per_dim"]) == 4
    assert folder.read_status(run)["state"] == "finished"
    header = (run / folder.METRICS_CSV).read_text().splitlines()[0]
    assert "val_kl_per_dim_3" in header and "train_recon" in header
    saved = json.loads((run / folder.CONFIG).read_text())
    assert saved["config"]["seed"] == 3 and saved["image_shape"] == [1, 12, 12]
    model = betavae.load(run)
    x = data.test.images[:5]
    mean, logvar = model.encode(x)
    assert mean.shape == (5, 4) and model.reconstruct(x).shape == x.shape and model.sample(3).shape == (3, 1, 12, 12)


def test_seed_makes_runs_identical(tmp_path, data):
    a = fit(TINY.replace(epochs=1), tmp_path / "a", data=data, log=lambda line: None)
    b = fit(TINY.replace(epochs=1), tmp_path / "b", data=data, log=lambda line: None)
    assert_same_weights(a, b)


@pytest.mark.parametrize("pixels", ["grey", "binary"])
def test_resume_equals_straight_run(tmp_path, data, pixels):
    config = TINY.replace(pixels=pixels)
    straight = fit(config, tmp_path / "straight", data=data, log=lambda line: None)
    split = fit(config.replace(epochs=1), tmp_path / "split", data=data, log=lambda line: None)
    resume(split, {"epochs": config.epochs}, data=data, log=lambda line: None)
    assert_same_weights(straight, split)
    assert [r["epoch"] for r in folder.read_metrics(split)] == [0, 1, 2]
    assert folder.read_metrics(split)[2]["val"] == folder.read_metrics(straight)[2]["val"]


@pytest.mark.parametrize("config", [TINY, TINY.replace(pixels="binary", lr_schedule="cosine")])
def test_interrupt_mid_epoch_then_resume_is_exact(tmp_path, data, config):
    straight = fit(config, tmp_path / "straight", data=data, log=lambda line: None)
    run_dir = tmp_path / "interrupted"
    run_dir.mkdir()
    trainer = Trainer(config, run_dir, data, log=lambda line: None)
    folder.write_meta(run_dir, folder.RunMeta(config, data.image_shape))
    step = trainer._train_step

    def step_then_ctrl_c(*args):  # Ctrl-C arrives during the 9th step (epoch 2, batch 2 of 6)
        terms = step(*args)
        trainer.stops.requested = trainer.step == 9
        return terms

    trainer._train_step = step_then_ctrl_c
    with pytest.raises(TrainingInterrupted, match="resume with: betavae train --resume"):
        trainer.run()
    assert folder.read_status(run_dir)["state"] == "interrupted"
    resume(run_dir, data=data, log=lambda line: None)
    assert_same_weights(straight, run_dir)


def test_nan_stops_and_keeps_the_last_good_checkpoint(tmp_path, data):
    data.train.images[5] = float("nan")
    with pytest.raises(TrainingDiverged, match=r"loss became nan at epoch 1, step \d+"):
        fit(TINY, tmp_path / "r", data=data, log=lambda line: None)
    assert folder.read_status(tmp_path / "r")["state"] == "failed"
    assert folder.load_checkpoint(tmp_path / "r")["epoch"] == 0
    assert all(torch.isfinite(w).all() for w in weights(tmp_path / "r").values())


def test_existing_run_is_not_overwritten(tmp_path, data):
    fit(TINY.replace(epochs=1), tmp_path / "r", data=data, log=lambda line: None)
    with pytest.raises(BetaVAEError, match="already holds a run"):
        fit(TINY.replace(epochs=1), tmp_path / "r", data=data, log=lambda line: None)


def test_resume_refuses_changed_settings_but_extends_epochs(tmp_path, data):
    run = fit(TINY.replace(epochs=1), tmp_path / "r", data=data, log=lambda line: None)
    with pytest.raises(BetaVAEError, match="cannot change beta"):
        resume(run, {"beta": 2.0}, data=data)
    resume(run, {"epochs": 2}, data=data, log=lambda line: None)
    assert folder.read_status(run)["epoch"] == 2


def test_corrupt_and_foreign_checkpoints(tmp_path, data):
    run = fit(TINY.replace(epochs=1), tmp_path / "r", data=data, log=lambda line: None)
    (run / folder.CHECKPOINT).write_bytes(b"not a checkpoint")
    with pytest.raises(BetaVAEError, match="corrupt or not a betavae checkpoint"):
        resume(run, {"epochs": 2}, data=data)
    save_file({"other.weight": torch.zeros(2)}, run / folder.WEIGHTS)
    with pytest.raises(BetaVAEError, match="does not match the model"):
        betavae.load(run)
    (run / folder.WEIGHTS).write_bytes(b"junk")
    with pytest.raises(BetaVAEError, match="corrupt or not a safetensors"):
        betavae.load(run)
    with pytest.raises(BetaVAEError, match="does not exist"):
        betavae.load(tmp_path / "missing")


def test_checkpoint_loads_with_weights_only(tmp_path, data):
    run = fit(TINY.replace(epochs=1), tmp_path / "r", data=data, log=lambda line: None)
    state = torch.load(run / folder.CHECKPOINT, weights_only=True)
    assert state["epoch"] == 1 and state["partial"] is None


def test_loss_is_independent_of_process_count_style_reduction(data):
    """One step on batch 2B equals the average gradient of two batches of B (what DDP relies on)."""
    trainer = Trainer(TINY, None, data, log=lambda line: None)
    model, objective = trainer.model, trainer.objective
    x = data.train.images[:16]
    torch.manual_seed(0)
    noise = torch.randn(16, 4)

    def grads(batch, eps):
        model.zero_grad()
        mean, logvar = model.encode(batch)
        logits = model.decode(mean + eps * (0.5 * logvar).exp())
        objective(logits, batch, mean, logvar).loss.backward()
        return [p.grad.clone() for p in model.parameters()]

    whole = grads(x, noise)
    halves = [grads(x[s], noise[s]) for s in (slice(0, 8), slice(8, 16))]
    for g, a, b in zip(whole, *halves):
        assert torch.allclose(g, (a + b) / 2, atol=1e-6)


def test_bf16_mixed_precision_trains(tmp_path, data):
    run = fit(TINY.replace(epochs=1, precision="bf16"), tmp_path / "r", data=data, log=lambda line: None)
    records = folder.read_metrics(run)
    assert records[1]["val"]["loss"] < records[0]["val"]["loss"]


def test_cuda_is_refused_clearly_without_a_gpu(tmp_path, data):
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    with pytest.raises(BetaVAEError, match="no CUDA GPU is available"):
        fit(TINY.replace(device="cuda"), tmp_path / "r", data=data)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_training_matches_the_cpu_loss_roughly(tmp_path, data):
    gpu = fit(TINY.replace(epochs=1, device="cuda"), tmp_path / "gpu", data=data, log=lambda line: None)
    cpu = fit(TINY.replace(epochs=1), tmp_path / "cpu", data=data, log=lambda line: None)
    assert folder.read_metrics(gpu)[1]["val"]["loss"] == pytest.approx(folder.read_metrics(cpu)[1]["val"]["loss"], rel=0.05)


def test_time_budget_stops_training_and_finishes_the_run(tmp_path, data):
    config = TINY.replace(epochs=10_000, time_budget=0.3, lr_schedule="cosine")
    run = fit(config, tmp_path / "r", data=data, log=lambda line: None)
    status = folder.read_status(run)
    records = folder.read_metrics(run)
    assert status["state"] == "finished" and status["message"] == "time budget reached"
    assert 1 <= records[-1]["epoch"] < 10_000
    trained = sum(r["train_seconds"] for r in records)
    assert 0.25 <= trained < 3.0  # per-epoch times are rounded to ms
    assert records[-1]["lr"] < config.lr * 0.1  # the cosine schedule ran over the budget
    last, before = records[-1], records[-2]
    trained_images = min((last["step"] - before["step"]) * config.batch_size, len(data.train))
    rounding = last["images_per_second"] * 0.0005  # train_seconds is rounded to the millisecond
    assert last["images_per_second"] * last["train_seconds"] == pytest.approx(trained_images, rel=0.2, abs=rounding)


def test_cosine_schedule_ends_with_the_epochs_when_they_come_before_the_time_budget(tmp_path, data):
    config = TINY.replace(epochs=2, time_budget=3600, lr_schedule="cosine")
    records = folder.read_metrics(fit(config, tmp_path / "r", data=data, log=lambda line: None))
    assert records[-1]["epoch"] == 2 and records[-1]["lr"] < config.lr * 0.05


def test_binary_data_stored_as_bool_trains_exactly_like_float(tmp_path, data):
    """dSprites is kept as bool (a quarter of float32's memory); batches become floats, so nothing else changes."""
    binary = lambda split, kind: Split(((split.images > 0.5).to(kind)), split.labels)  # noqa: E731
    as_bool = Data("b", *(binary(s, torch.bool) for s in (data.train, data.val, data.test)))
    as_float = Data("f", *(binary(s, torch.float32) for s in (data.train, data.val, data.test)))
    config = TINY.replace(epochs=2, pixels="binary")  # two epochs: the second permutation must match too
    a = fit(config, tmp_path / "bool", data=as_bool, log=lambda line: None)
    b = fit(config, tmp_path / "float", data=as_float, log=lambda line: None)
    assert_same_weights(a, b)
    untimed = lambda run: [{k: v for k, v in r.items() if "second" not in k} for r in folder.read_metrics(run)]  # noqa
    assert untimed(a) == untimed(b)
    assert torch.equal(as_bool.train.sample(50, seed=2).images.float(), as_float.train.sample(50, seed=2).images)
