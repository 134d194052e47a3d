"""The training loop: Adam on the objective, per-epoch evaluation, atomic checkpoints, exact resume, clean Ctrl-C.

Figures, TensorBoard and anything else that watches training are callbacks (callbacks.py), what a checkpoint holds is
checkpoint.py, and setting a run up (data, processes, resume) is fit.py, so this module only trains.
"""

from __future__ import annotations

import math
import sys
import time
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
from tqdm import tqdm

from .. import data as datalib
from ..config import Config
from ..errors import BetaVAEError
from ..model import decoders, networks, objectives
from ..model.likelihood import Totals, elbo_terms
from . import checkpoint, cuda_graphs, distributed, folder, weights
from .callbacks import Callback, EpochEnd, held_out
from .interrupts import StopRequests

EVAL_NOTE = "loss terms use one sampled z per image (a stochastic ELBO estimate), not z = mean"
MAX_UNTRAINED_EVAL = 50_000  # the untrained model is evaluated on at most this many training images (dSprites: 717k)
# A held-out negative ELBO this many times the untrained model's means training has diverged (an lr far too high),
# long before it reaches NaN. The ELBO, not the objective's loss: a capacity loss legitimately swings by gamma x nats.
DIVERGENCE_FACTOR = 10.0


class TrainingDiverged(BetaVAEError):
    """The loss became NaN or infinite, or far worse than the untrained model's; the last good checkpoint is kept."""


class TrainingInterrupted(BetaVAEError):
    """Ctrl-C: a checkpoint was written and the run can be resumed."""


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
        decoders.check_data(config.likelihood, data.train.images)
        datalib.check_pixels(config.pixels, data.image_shape, config.dataset)
        torch.manual_seed(config.seed)
        self.model = networks.build(config, data.image_shape)
        networks.init_output_bias(self.model, data.train.mean_image().nan_to_num(0.5))  # bad pixels: caught later
        self.model.to(self.device)
        self.net = self.model
        if self.context.distributed:
            device_ids = [self.device] if self.device.type == "cuda" else None
            self.net = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=device_ids)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=config.lr, fused=True)  # one kernel per step
        # A finiteness check waits for the device: on a GPU it runs every 100 steps (and on each epoch's totals).
        self.finite_check_every = 1 if self.device.type == "cpu" else 100
        self.objective = config.build_objective(dataset_size=len(data.train)).to(self.device)
        if self.context.distributed and not self.objective.distributable:
            raise BetaVAEError(f"the {config.objective} objective trains on one process (its pairs or discriminator "
                               "would be split between processes); run it without --nproc")
        self.pairs = self._pairs() if self.objective.paired else None
        self.pairing = torch.Generator().manual_seed(config.seed + 2)  # partners of paired objectives (on the CPU)
        draws_pixels = config.pixels == "binary" and data.train.images.is_floating_point()
        self.graphed = None
        mapped = getattr(self.train_images, "mapped", False)  # read from a file per batch: never inside a graph
        if config.cuda_graphs and self.objective.graphable and not mapped and \
                cuda_graphs.supported(self.device, self.context.distributed, draws_pixels):
            self.graphed = cuda_graphs.GraphedGradients(self._loss_terms, list(self.model.parameters()),
                                                        self.global_batch, self.device)
        self.generator = torch.Generator(device=self.device).manual_seed(config.seed)  # epoch permutations
        # Binarization draws have their own stream, so bool-stored binary images (which need no draw) give the same
        # permutations, and so the same run, as float-stored ones.
        self.binarizer = torch.Generator(device=self.device).manual_seed(config.seed + 1)
        self.epoch, self.step = 0, 0
        self.saved_epoch = 0  # the epoch of the latest checkpoint written: what a run that fails has completed
        self.trained_seconds = 0.0  # training time of the finished epochs (the time budget counts this)
        self.clock = 0.0  # training seconds so far as all ranks agree on them (the slowest rank's)
        self.out_of_time = False
        self.run_id = ""  # the run's identity (config.json), kept in each checkpoint; fit sets it
        self.records: list[dict[str, Any]] = []
        self.partial: dict[str, Any] | None = None  # the epoch in progress: permutation, position, running totals
        self.stops = StopRequests()

    def _pairs(self) -> datalib.FactorPairs:
        """Partners for a paired objective (Ada-GVAE): only data with ground-truth factors have them."""
        pairs = datalib.factor_pairs(self.config.dataset, self.config.val_size, f"the {self.config.objective} objective")
        if len(pairs.grid_index) != len(self.data.train):
            raise BetaVAEError(f"the factor grid of {self.config.dataset} lists {len(pairs.grid_index)} training images "
                               f"but the data hold {len(self.data.train)}; load the data by name, not modified")
        return pairs

    @property
    def global_batch(self) -> int:
        return self.config.batch_size * self.context.world_size

    @property
    def batches_per_epoch(self) -> int:
        return math.ceil(len(self.data.train) / self.global_batch)

    # --- the loop -------------------------------------------------------------------------------------------
    def run(self) -> None:
        """Train until config.epochs, evaluating the untrained model first when starting fresh."""
        with self.stops:
            if not self.records and self.epoch == 0:
                self._finish_epoch(0, train_means=None, seconds=0.0)
            while self.epoch < self.config.epochs and not self.out_of_time:
                self._train_epoch(self.epoch + 1)
        if self.context.is_main and folder.read_status(self.run_dir)["state"] != "finished":
            self._finish_run()  # a resumed run whose finishing did not complete (killed while drawing, say)

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
            stop, self.clock = self.context.max([float(self.stops.requested), self._elapsed()], self.device)
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
        if self.pairs is not None:  # the images, then their partners: the batch holds both halves of every pair
            index = torch.cat([index, self.pairs.partners(index, self.pairing).to(index.device)])
        if self.graphed:
            terms, n = self.graphed(index, self.step), len(index)
        else:
            terms, n = self._gradients(index)
        if self.step % self.finite_check_every == 0 and \
                self.context.any(not bool(torch.isfinite(terms.loss)), self.device):
            self._diverged(terms.loss.item(), epoch, f"step {self.step} (batch {position})")
        self.optimizer.step()
        self.objective.after_step()  # FactorVAE's discriminator learns from the same batch
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
            logits, mean, logvar = self.net(x[part], noise=noise[part], posterior=self.objective.posterior)
        mean, logvar = mean.float(), logvar.float()
        z = networks.posterior_draw(mean, logvar, noise[part])  # the codes, for objectives that estimate q(z)
        return self.objective(logits.float(), x[part], mean, logvar, step, z=z, likelihood=self.model.likelihood)

    def _gradients(self, index: torch.Tensor) -> tuple[objectives.Terms, int]:
        """Eager: the terms of this rank's slice and its gradients (DDP averages them over the ranks)."""
        part, scale = self.context.local_slice(index)
        terms = self._loss_terms(index, self.step, part)
        self.optimizer.zero_grad(set_to_none=True)
        (terms.loss * scale).backward() if scale != 1 else terms.loss.backward()
        return terms, part.stop - part.start

    def _diverged(self, loss: float, epoch: int, where: str, what: str = "loss became") -> None:
        """Stop the run as failed, keeping the last good weights and checkpoint, and say how to continue."""
        message = (f"{what} {loss:.4g} at epoch {epoch}, {where}; the weights and checkpoint of epoch {self.epoch} "
                   f"are kept; continue with a lower learning rate: betavae train --resume {self.run_dir} "
                   f"--lr {self.config.lr / 10:g} (or check the data)")
        if self.context.is_main:
            folder.write_status(self.run_dir, "failed", self.epoch, self.config.epochs, message)
        raise TrainingDiverged(message)

    def _finish_epoch(self, epoch: int, train_means: dict | None, seconds: float, images: int = 0) -> None:
        """Evaluate, refuse a diverged model, record and save everything atomically (the best checkpoint apart),
        then let the callbacks look (rank 0 alone). The last epoch then finishes the run."""
        previous, self.epoch, self.partial = self.epoch, epoch, None
        record = self._evaluate(epoch, train_means, seconds, images) if self.context.is_main else None
        ratio = self._divergence(record) if record else 0.0
        if self.context.any(ratio > DIVERGENCE_FACTOR, self.device):  # every rank stops together
            self.epoch = previous
            self._diverged(held_out(record)["neg_elbo"] if record else math.nan, epoch,
                           f"{ratio:.3g} times the untrained model's", "the held-out negative ELBO reached")
        if self.context.is_main:
            self._save_epoch(record)
            last = epoch == self.config.epochs or self.out_of_time
            folder.write_status(self.run_dir, "finishing" if last else "running", epoch, self.config.epochs)
            self.log(summary_line(record))
            for callback in self.callbacks:
                callback(EpochEnd(epoch, record, self.model, self.data, self.config, self.run_dir, last, self.run_id))
            if last:
                self._mark_finished()
        self.context.barrier()

    def _save_epoch(self, record: dict[str, Any]) -> None:
        """The record, the weights, the best checkpoint when the held-out negative ELBO is the lowest so far (the ELBO,
        not the loss, whose KL weight may change) and the checkpoint, each atomically. The checkpoint comes last, so a
        full disk at any write leaves the run at the epoch before, with files a resume accepts."""
        self.records.append(record)
        folder.write_metrics(self.run_dir, self.records, self.run_id)
        weights.save_weights(self.run_dir, self.model, self.epoch, self.run_id)
        state = checkpoint.capture(self)
        if self.epoch > 0 and held_out(record)["neg_elbo"] <= min(held_out(r)["neg_elbo"] for r in self.records[1:]):
            folder.save_checkpoint(self.run_dir, state, folder.BEST_CHECKPOINT)
        folder.save_checkpoint(self.run_dir, state)  # last: a write that fails before it leaves the epoch to redo
        self.saved_epoch = self.epoch

    def _divergence(self, record: dict[str, Any]) -> float:
        """The held-out negative ELBO over the untrained model's (0 for the untrained model itself)."""
        if not self.records:
            return 0.0
        return held_out(record)["neg_elbo"] / held_out(self.records[0])["neg_elbo"]

    def _finish_run(self) -> None:
        """The finishing phase alone: the callbacks see the last epoch again (figures, report), then finished."""
        if not self.records:
            return
        for callback in self.callbacks:
            callback(EpochEnd(self.epoch, self.records[-1], self.model, self.data, self.config, self.run_dir, True,
                             self.run_id))
        self._mark_finished()

    def _mark_finished(self) -> None:
        folder.write_status(self.run_dir, "finished", self.epoch, self.config.epochs,
                            "time budget reached" if self.out_of_time else "")

    def _evaluate(self, epoch: int, train_means: dict | None, seconds: float, images: int) -> dict[str, Any]:
        evaluate = lambda split: elbo_terms(self.model, split, self.objective, self.config.pixels,  # noqa: E731
                                            seed=self.config.seed + 10_000, step=self.step)
        record: dict[str, Any] = {
            "epoch": epoch, "step": self.step, "lr": self.optimizer.param_groups[0]["lr"],
            **self.objective.logged(self.step),  # its schedule at this step: a KL weight, a capacity
            "train": train_means or evaluate(self.data.train.sample(MAX_UNTRAINED_EVAL)),
            "train_seconds": round(seconds, 3),
            "images_per_second": round(images / seconds, 1) if seconds > 0 else None,  # a cut-short epoch too
            "note": EVAL_NOTE,
        }
        if len(self.data.val):
            record["val"] = evaluate(self.data.val)
        return record

    # --- interruption and resume ----------------------------------------------------------------------------
    def _interrupt(self, epoch: int) -> None:
        self.partial["totals"] = self.partial["totals"].reduced(self.context)  # rank 0 keeps the job's totals
        if self.context.is_main:
            folder.save_checkpoint(self.run_dir, checkpoint.capture(self))
            folder.write_status(self.run_dir, "interrupted", self.epoch, self.config.epochs,
                                f"stopped in epoch {epoch} after {self.partial['position']} batches")
        self.context.barrier()
        raise TrainingInterrupted(f"interrupted in epoch {epoch} (batch {self.partial['position']} of "
                                  f"{self.batches_per_epoch}); checkpoint written; resume with: "
                                  f"betavae train --resume {self.run_dir}")


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
