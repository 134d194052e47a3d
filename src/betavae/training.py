"""The training loop: Adam on the objective, per-epoch evaluation, atomic checkpoints, exact resume, clean Ctrl-C.

Figures, TensorBoard and anything else that watches training are callbacks, so this module only trains.
"""

from __future__ import annotations

import gc
import math
import signal
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm import tqdm

from . import data as datalib
from . import cuda_graphs, distributed, models, objectives, runs
from .config import Config
from .errors import BetaVAEError
from .likelihood import Totals, elbo_terms

EVAL_NOTE = "loss terms use one sampled z per image (a stochastic ELBO estimate), not z = mean"
MAX_UNTRAINED_EVAL = 50_000  # the untrained model is evaluated on at most this many training images (dSprites: 717k)
RESUMABLE_CHANGES = ("epochs", "device", "threads", "precision", "cuda_graphs")


class TrainingDiverged(BetaVAEError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingInterrupted(BetaVAEError):
    """Ctrl-C: a checkpoint was written and the run can be resumed."""


@dataclass
class EpochEnd:
    """What a callback sees after each epoch (epoch 0 is the untrained model)."""

    epoch: int
    record: dict[str, Any]
    model: models.VAE
    data: datalib.Data
    config: Config
    run_dir: Path
    is_last: bool


Callback = Callable[[EpochEnd], None]


def learning_rate(config: Config, progress: float) -> float:
    """Constant, or cosine decay from lr to 0 as the run's progress goes from 0 to 1."""
    if config.lr_schedule == "cosine":
        return config.lr * 0.5 * (1.0 + math.cos(math.pi * min(max(progress, 0.0), 1.0)))
    return config.lr


class Trainer:
    """Holds the state of one run and advances it epoch by epoch (on one process, or as one rank of a DDP job)."""

    def __init__(self, config: Config, run_dir: Path, data: datalib.Data, callbacks: Iterable[Callback] = (),
                 progress: bool | None = None, log: Callable[[str], None] | None = None,
                 context: distributed.Context | None = None):
        self.config, self.run_dir, self.callbacks = config, run_dir, list(callbacks)
        self.context = context or distributed.Context()
        self.device = distributed.device_for(config.device, self.context.local_rank)
        self.data = data
        self.train_images = data.train.images.to(self.device)
        main = self.context.is_main
        self.progress = main and (sys.stderr.isatty() if progress is None else progress)
        self.log = (log or (lambda line: print(line, file=sys.stderr))) if main else (lambda line: None)
        torch.manual_seed(config.seed)
        self.model = models.build(config, data.image_shape)
        models.init_output_bias(self.model, data.train.mean_image().nan_to_num(0.5))  # bad pixels: caught later
        self.model.to(self.device)
        self.net = self.model
        if self.context.distributed:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=True)  # one kernel per step
        # A finiteness check waits for the device: on a GPU it runs every 100 steps (and on each epoch's totals).
        self.finite_check_every = 1 if self.device.type == "cpu" else 100
        draws_pixels = config.pixels == "binary" and data.train.images.is_floating_point()
        self.graphed = None
        if config.cuda_graphs and cuda_graphs.supported(self.device, self.context.distributed, draws_pixels):
            self.graphed = cuda_graphs.GraphedGradients(self._loss_terms, list(self.model.parameters()),
                                                        self.global_batch, self.device)
        self.objective = objectives.build(config)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)  # epoch permutations
        # Binarization draws have their own stream, so bool-stored binary images (which need no draw) give the same
        # permutations, and so the same run, as float-stored ones.
        self.binarizer = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.epoch, self.step = 0, 0
        self.trained_seconds = 0.0  # training time of the finished epochs (the time budget counts this)
        self.clock = 0.0  # training seconds so far as all ranks agree on them (the slowest rank's)
        self.out_of_time = False
        self.records: list[dict[str, Any]] = []
        self.partial: dict[str, Any] | None = None  # the epoch in progress: permutation, position, running totals
        self.stop_requested = False

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.context.world_size

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.global_batch)

    # --- the loop -------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Train until config.epochs, evaluating the untrained model first when starting fresh."""
        with self._signals_request_stop():
            if not self.records and self.epoch == 0:
                self._finish_epoch(0, train_means=None, seconds=0.0)
            while self.epoch < self.config.epochs and not self.out_of_time:
                self._train_epoch(self.epoch + 1)
        if self.context.is_main:
            runs.write_status(self.run_dir, "finished", self.epoch, self.config.epochs,
                              "time budget reached" if self.out_of_time else "")

    def _train_epoch(self, epoch: int) -> None:
        if self.partial is None:
            self.partial = {"perm": torch.randperm(len(self.data.train), generator=self.generator,
                                                   device=self.device),
                            "position": 0, "totals": Totals(self.config.latent_dim, self.device), "seconds": 0.0}
        totals = self.partial["totals"]
        batches = self.partial["perm"].split(self.global_batch)
        start = time.perf_counter() - self.partial["seconds"]
        bar = tqdm(total=len(batches), initial=self.partial["position"], desc=f"epoch {epoch}",
                   disable=not self.progress, leave=False, file=sys.stderr)
        for position in range(self.partial["position"], len(batches)):
            terms, n = self._train_step(batches[position], epoch, position)
            totals.add(terms, n)
            self.partial.update(position=position + 1, seconds=time.perf_counter() - start)
            if position % 20 == 0:
                bar.set_postfix(loss=f"{terms.loss:.1f}", recon=f"{terms.recon:.1f}", kl=f"{terms.kl:.2f}")
            bar.update()
            stop, self.clock = self.context.max([float(self.stop_requested), self._elapsed()], self.device)
            if stop:
                bar.close()
                self._interrupt(epoch)
            if self.config.time_budget and self.clock >= self.config.time_budget:
                self.out_of_time = True
                break
        bar.close()
        seconds = time.perf_counter() - start
        self.trained_seconds += seconds
        job_totals = totals.reduced(self.context)
        means = job_totals.means()
        if not math.isfinite(means["loss"]):  # steps between finiteness checks (on a GPU) end up here
            self._diverged(means["loss"], epoch, f"by step {self.step}")
        self._finish_epoch(epoch, means, seconds, job_totals.n)

    def _elapsed(self) -> float:
        """Seconds of training so far, the epoch in progress included."""
        return self.trained_seconds + (self.partial["seconds"] if self.partial else 0.0)

    def _progress(self) -> float:
        """How far the run is, from 0 to 1: by steps, or by time when there is a time budget and it would end the
        run first (the schedule then ends with the run, whichever limit stops it)."""
        by_steps = self.step / max(1, self.config.epochs * self.batches_per_epoch)
        return max(by_steps, self.clock / self.config.time_budget) if self.config.time_budget else by_steps

    def _train_step(self, index: torch.Tensor, epoch: int, position: int) -> tuple[objectives.Terms, int]:
        """One optimizer step on a global batch, of which this rank trains on its slice."""
        for group in self.optimizer.param_groups:
            group["lr"] = learning_rate(self.config, self._progress())
        if self.graphed:
            terms, n = self.graphed(index, self.step), len(index)
        else:
            terms, n = self._gradients(index)
        if self.step % self.finite_check_every == 0 and \
                self.context.any(not bool(torch.isfinite(terms.loss)), self.device):
            self._diverged(terms.loss.item(), epoch, f"step {self.step} (batch {position})")
        self.optimizer.step()
        self.step += 1
        return terms, n

    def _loss_terms(self, index: torch.Tensor, step: objectives.Step, part: slice = slice(None)) -> objectives.Terms:
        """The loss terms of this rank's part of the batch of training images at `index` (one sampled z each)."""
        # Every rank draws the targets and the noise of the whole global batch from identical streams, so the
        # slices add up to exactly what one process would draw for that batch.
        x = datalib.prepare(self.train_images[index], self.config.pixels, self.binarizer)
        noise = torch.randn(len(index), self.config.latent_dim, device=self.device)
        # No autocast weight cache: each weight is cast once per step anyway, and a CUDA graph cannot hold one.
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.config.precision == "bf16",
                            cache_enabled=False):
            logits, mean, logvar = self.net(x[part], noise=noise[part])
        return self.objective(logits.float(), x[part], mean.float(), logvar.float(), step)

    def _gradients(self, index: torch.Tensor) -> tuple[objectives.Terms, int]:
        """Eager: the terms of this rank's slice and its gradients (DDP averages them over the ranks)."""
        part, scale = self.context.local_slice(index)
        terms = self._loss_terms(index, self.step, part)
        self.optimizer.zero_grad(set_to_none=True)
        (terms.loss * scale).backward() if scale != 1 else terms.loss.backward()
        return terms, part.stop - part.start

    def _diverged(self, loss: float, epoch: int, where: str) -> None:
        if self.context.is_main:
            runs.write_status(self.run_dir, "failed", self.epoch, self.config.epochs, "loss not finite")
        raise TrainingDiverged(
            f"loss became {loss} at epoch {epoch}, {where}; the weights and checkpoint of epoch {self.epoch} are "
            f"kept in {self.run_dir}; lower --lr or check the data")

    def _finish_epoch(self, epoch: int, train_means: dict | None, seconds: float, images: int = 0) -> None:
        """Evaluate, record, save everything atomically, then let the callbacks look (rank 0 alone)."""
        self.epoch, self.partial = epoch, None
        if self.context.is_main:
            record = self._evaluate(epoch, train_means, seconds, images)
            self.records.append(record)
            runs.write_metrics(self.run_dir, self.records)
            runs.save_weights(self.run_dir, self.model, epoch)
            runs.save_checkpoint(self.run_dir, self.checkpoint_state())
            last = epoch == self.config.epochs or self.out_of_time
            runs.write_status(self.run_dir, "finished" if last else "running", epoch, self.config.epochs,
                              "time budget reached" if self.out_of_time else "")
            self.log(summary_line(record))
            for callback in self.callbacks:
                callback(EpochEnd(epoch, record, self.model, self.data, self.config, self.run_dir, last))
        self.context.barrier()

    def _evaluate(self, epoch: int, train_means: dict | None, seconds: float, images: int) -> dict[str, Any]:
        evaluate = lambda split: elbo_terms(self.model, split, self.objective, self.config.pixels,  # noqa: E731
                                            seed=self.config.seed + 10_000, step=self.step)
        record: dict[str, Any] = {
            "epoch": epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
            "kl_weight": self.objective.kl_weight(self.step),
            "train": train_means or evaluate(self.data.train.sample(MAX_UNTRAINED_EVAL)),
            "train_seconds": round(seconds, 3),
            "images_per_second": round(images / seconds, 1) if seconds > 0 else None,  # a cut-short epoch too
            "note": EVAL_NOTE,
        }
        if isinstance(self.objective, objectives.CapacityLoss):
            record["capacity"] = self.objective.capacity(self.step)
        if len(self.data.val):
            record["val"] = evaluate(self.data.val)
        return record

    # --- interruption and resume ----------------------------------------------------------------------------
    def _interrupt(self, epoch: int) -> None:
        self.partial["totals"] = self.partial["totals"].reduced(self.context)  # rank 0 keeps the job's totals
        if self.context.is_main:
            runs.save_checkpoint(self.run_dir, self.checkpoint_state())
            runs.write_status(self.run_dir, "interrupted", self.epoch, self.config.epochs,
                              f"stopped in epoch {epoch} after {self.partial['position']} batches")
        self.context.barrier()
        raise TrainingInterrupted(f"interrupted in epoch {epoch} (batch {self.partial['position']} of "
                                  f"{self.batches_per_epoch}); checkpoint written; resume with: "
                                  f"betavae train --resume {self.run_dir}")

    def checkpoint_state(self) -> dict[str, Any]:
        state = {
            "format": "betavae-checkpoint-1", "epoch": self.epoch, "step": self.step,
            "trained_seconds": self.trained_seconds, "out_of_time": self.out_of_time,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "rng_torch": torch.get_rng_state(), "rng_data": self.generator.get_state(),
            "rng_binarize": self.binarizer.get_state(),
            "partial": self.partial and {**self.partial, "totals": self.partial["totals"].state()},
        }
        if self.device.type == "cuda":
            state["rng_cuda"] = torch.cuda.get_rng_state(self.device)
        return state

    def restore(self, state: dict[str, Any]) -> None:
        """Continue exactly where a checkpoint left off (weights, optimizer, RNG streams, epoch in progress)."""
        if not isinstance(state, dict) or state.get("format") != "betavae-checkpoint-1":
            raise BetaVAEError(f"{self.run_dir / runs.CHECKPOINT} is not a betavae checkpoint")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
        except (RuntimeError, ValueError, KeyError) as error:
            raise BetaVAEError(f"{self.run_dir / runs.CHECKPOINT} does not match this run's model ({error})") from None
        self.epoch, self.step, self.partial = state["epoch"], state["step"], state["partial"]
        self.trained_seconds = self.clock = state.get("trained_seconds", 0.0)
        self.out_of_time = state.get("out_of_time", False)
        torch.set_rng_state(state["rng_torch"])
        self.generator.set_state(state["rng_data"])
        if "rng_binarize" in state:  # checkpoints of earlier versions drew both from rng_data
            self.binarizer.set_state(state["rng_binarize"])
        if "rng_cuda" in state and self.device.type == "cuda":
            torch.cuda.set_rng_state(state["rng_cuda"], self.device)
        if self.partial is not None:
            totals = Totals.from_state(self.partial["totals"], self.device) if self.context.is_main else \
                Totals(self.config.latent_dim, self.device)  # the saved totals are the job's; count them once
            self.partial.update(perm=self.partial["perm"].to(self.device), totals=totals)
        self.records = [r for r in runs.read_metrics(self.run_dir) if r["epoch"] <= self.epoch]

    def _signals_request_stop(self):
        """First Ctrl-C (or SIGTERM, as torchrun sends): finish the batch, checkpoint, exit cleanly. A second Ctrl-C
        stops at once."""
        trainer = self

        class _Handler:
            def __enter__(self):
                self.previous = {}
                if threading.current_thread() is threading.main_thread():
                    self.previous = {s: signal.signal(s, self.handle) for s in (signal.SIGINT, signal.SIGTERM)}
                return self

            def handle(self, signum, frame):
                if trainer.stop_requested:
                    raise KeyboardInterrupt
                trainer.stop_requested = True

            def __exit__(self, *exc):
                for signum, previous in self.previous.items():
                    signal.signal(signum, previous)
                return False

        return _Handler()


def summary_line(record: dict[str, Any]) -> str:
    """One line per epoch for the log."""
    parts = [f"epoch {record['epoch']:>3}"]
    for split in ("train", "val"):
        if split in record:
            m = record[split]
            parts.append(f"{split} loss {m['loss']:.2f} recon {m['recon']:.2f} kl {m['kl']:.2f}")
    if record.get("images_per_second"):
        parts.append(f"{record['images_per_second']:.0f} img/s")
    return " | ".join(parts)


def train(config: Config | None = None, run_dir: str | Path = "runs/betavae", *, resume: bool = False,
          data: datalib.Data | None = None, callbacks: Iterable[Callback] = (), progress: bool | None = None,
          log: Callable[[str], None] | None = None) -> Path:
    """Train a model into run_dir (or continue one with resume=True) and return the run folder.

    On resume the saved configuration is used; only epochs, device and threads may be changed.
    """
    run_dir = Path(run_dir)
    if resume:
        config = resumed_config(run_dir, config)
        state = runs.load_checkpoint(run_dir)
    else:
        config = config or Config()
        if (run_dir / runs.CONFIG).exists():
            raise BetaVAEError(f"{run_dir} already holds a run; continue it with --resume {run_dir}, "
                               "or choose another --name")
        state = None
    if config.threads:
        torch.set_num_threads(config.threads)
    context = distributed.from_environment(distributed.device_for(config.device))
    trainer = None
    try:
        if data is None:
            if not context.is_main:
                context.barrier()  # rank 0 fetches (and caches) the data first
            data = datalib.load(config.dataset, config.data_dir, config.val_size)
            if context.is_main:
                context.barrier()
        if context.is_main:
            run_dir.mkdir(parents=True, exist_ok=True)
            runs.save_config(run_dir, config, data.image_shape)
        trainer = Trainer(config, run_dir, data, callbacks, progress, log, context)
        if state is not None:
            trainer.restore(state)
        trainer.run()
        context.barrier()  # every rank done before any tears down
    finally:
        if context.distributed:
            del trainer  # DDP's reducer must go before its process group, or the interpreter aborts at exit
            gc.collect()
            distributed.shutdown()
    return run_dir


def resumed_config(run_dir: Path, requested: Config | None) -> Config:
    """The saved configuration, with the few fields that may change on resume taken from the request."""
    saved, _ = runs.read_config(run_dir)
    if requested is None:
        return saved
    changed = {k for k, v in requested.to_dict().items() if saved.to_dict()[k] != v}
    refused = sorted(changed - set(RESUMABLE_CHANGES))
    if refused:
        raise BetaVAEError(f"cannot change {', '.join(refused)} when resuming {run_dir}; only "
                           f"{', '.join(RESUMABLE_CHANGES)} may change. Start a new run instead")
    return saved.replace(**{k: getattr(requested, k) for k in changed})
