"""A run folder, opened once: `Run.open(path)` reads config.json a single time (its `RunMeta`) and everything else on
first use.

Every command that reads a run (evaluate, disentanglement, report, the figure commands, sweep, the bench scripts)
goes through this object: the resolved configuration, status, metrics, the last epoch's KL per dimension, image
shape, figure folder, the model, and the data, of which only the split asked for is loaded. The files themselves
are written by training (training/folder.py owns their format).
"""

from __future__ import annotations

import os
import sys
from functools import cached_property
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from . import data as datalib
from . import samplers
from .config import Config
from .errors import BetaVAEError
from .model import VAE
from .training import folder, lock, weights
from .training.callbacks import kl_per_dim

SPLITS = ("train", "val", "test")


class TrainingCodes(NamedTuple):
    """Posterior means, one draw z ~ q(z|x) per image (the codes the decoder was trained on), and labels."""

    means: np.ndarray
    samples: np.ndarray
    labels: np.ndarray


FIT_IMAGES = 50_000  # what is fitted to the codes of training images uses at most this many (dSprites has 717k)


class Run:
    """One run folder: what it was trained with, how far it got, and (lazily) its model and data."""

    def __init__(self, path: Path, meta: folder.RunMeta, model: VAE | None = None, data: datalib.Data | None = None):
        self.path, self.meta = path, meta
        self._splits: dict[str, datalib.Split] = {}
        if model is not None:
            self.__dict__["model"] = model  # fills the cached property
        if data is not None:
            self.__dict__["data"] = data

    @classmethod
    def open(cls, path: str | Path, *, finished: bool = False, model: VAE | None = None,
             data: datalib.Data | None = None) -> "Run":
        """Open a run folder (or the folder of a model.safetensors path). With finished=True, refuse one that has not
        finished, naming the command that finishes it. A model or data already in memory may be handed over."""
        if not isinstance(path, (str, Path)):
            raise BetaVAEError(f"a run is opened by its folder's path, got {type(path).__name__} {path!r}")
        path = Path(path)
        if path.suffix == ".safetensors":
            path = path.parent
        run = cls(path, folder.read_meta(path), model, data)
        if finished:
            run.require_finished()
        return run

    # --- what the folder says ------------------------------------------------------------------------------------
    @property
    def config(self) -> Config:
        return self.meta.config

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self.meta.image_shape

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def status(self) -> dict[str, Any]:
        """running, interrupted, failed or finished, with the last completed epoch (read afresh each time)."""
        return folder.read_status(self.path)

    @property
    def finished(self) -> bool:
        return self.status["state"] == "finished"

    def require_writable(self) -> None:
        """Refuse, before any work, a run folder this process cannot write into (mounted read-only, say): the
        commands that draw or score write their results beside the run."""
        places = [self.path, *(self.path / name for name in folder.RUN_FOLDERS if (self.path / name).is_dir())]
        unwritable = next((place for place in places if not os.access(place, os.W_OK | os.X_OK)), None)
        if unwritable is not None:
            raise BetaVAEError(f"{unwritable} cannot be written (a read-only folder?); commands that draw or score a "
                               "run write beside it: copy the run folder somewhere writable and run the command on the "
                               "copy")
        folder.check_places(self.path)  # figures/ or samplers/ a symbolic link or a file: refused, never written through

    def require_finished(self) -> None:
        """Refuse a run that has not finished, with the one command that gets the user further."""
        status = self.status
        if status["state"] == "finished":
            return
        where = f"run {self.path} is {status['state']} (epoch {status['epoch']} of {status['epochs']})"
        if status["state"] == "failed":
            raise BetaVAEError(f"{where}: {status.get('message') or 'it stopped on an error'}")
        trainer = lock.training_process(self.path)
        if trainer is not None:
            raise BetaVAEError(f"{where}, trained now by process {trainer}; run this again when it has finished")
        if status["state"] in ("running", "finishing"):  # no process holds it: the one that did was killed
            where = (f"run {self.path} stopped while {status['state']} (epoch {status['epoch']} of {status['epochs']}; "
                     "killed?)")
        if status["state"] == "unknown" and status["message"]:
            raise BetaVAEError(f"{status['message']}, so whether run {self.path} finished is unknown; betavae train "
                               f"--resume {self.path} writes it again (training only what its checkpoint lacks)")
        raise BetaVAEError(f"{where}; finish it with: betavae train --resume {self.path}")

    @cached_property
    def metrics(self) -> list[dict[str, Any]]:
        """One record per finished epoch (epoch 0 is the untrained model), reaching the last epoch status.json says
        was completed, so that figures and the report never show a history with epochs lost without a word."""
        records = folder.read_metrics(self.path, self.meta.run_id)
        folder.check_metrics_reach(self.path, records, self.status)
        return records

    @property
    def last_record(self) -> dict[str, Any]:
        if not self.metrics:
            raise BetaVAEError(f"{self.path} has no metrics yet; train it first")
        return self.metrics[-1]

    @property
    def kl_per_dim(self) -> list[float]:
        """The last epoch's KL per latent dimension (validation split, else training split)."""
        return kl_per_dim(self.last_record)

    @property
    def objective(self) -> dict[str, Any]:
        """The objective and the parameters it actually reads (capacity: gamma and C, never a beta it ignores)."""
        return {"objective": self.config.objective, **self.config.settings}

    def describe_objective(self) -> str:
        return self.config.build_objective().describe()

    @property
    def figure_dir(self) -> Path:
        return self.path / folder.FIGURES

    # --- what is loaded on first use -----------------------------------------------------------------------------
    @cached_property
    def model(self) -> VAE:
        """The latest weights in the model config.json describes, on the CPU, in eval mode."""
        return self.load_model()

    def load_model(self, device: str = "cpu") -> VAE:
        """A fresh copy of the model on a device (the cached `model` stays on the CPU)."""
        return weights.load_weights(self.path, self.config, self.image_shape, device, self.meta.run_id)

    @cached_property
    def data(self) -> datalib.Data:
        """All three splits of the data the run was trained on."""
        data = datalib.load(self.config.dataset, self.config.data_dir, self.config.val_size, self.config.image_size)
        for name in SPLITS:
            self._warn_if_changed(name, data.split(name))
        return data

    def split(self, name: str) -> datalib.Split:
        """One split of the run's data, loading that split alone when the whole data set is not loaded yet."""
        if name not in SPLITS:
            raise BetaVAEError(f"unknown split {name!r}; choose train, val or test")
        if "data" in self.__dict__:
            return self.data.split(name)
        if name not in self._splits:
            self._splits[name] = datalib.load_split(self.config.dataset, self.config.data_dir, self.config.val_size,
                                                    name, self.config.image_size)
            self._warn_if_changed(name, self._splits[name])
        return self._splits[name]

    def _warn_if_changed(self, name: str, split: datalib.Split) -> None:
        """Say so (on stderr) when a split differs from the one the run was trained on: what is computed on it
        describes the new data. Images of another shape are refused: the model cannot read them."""
        shape = tuple(split.images.shape[1:])
        if len(split) and shape != tuple(self.image_shape):
            raise BetaVAEError(f"the images of {self.config.dataset} are now {'x'.join(map(str, shape))} and {self.path} "
                               f"was trained on {'x'.join(map(str, self.image_shape))}; restore the data the run was "
                               "trained on, or train a new run on these")
        recorded = self.meta.split_fingerprints.get(name, "")
        if recorded and recorded != datalib.split_fingerprint(split):
            print(f"betavae: warning: the {name} split of {self.config.dataset} differs from the one {self.path} was "
                  "trained with (the data changed since); results describe the data as they are now", file=sys.stderr)

    @cached_property
    def training_sample(self) -> datalib.Split:
        """At most FIT_IMAGES training images, chosen by the run's seed: the images samplers are fitted to."""
        return self.split("train").sample(FIT_IMAGES, seed=self.config.seed)

    @cached_property
    def training_codes(self) -> TrainingCodes:
        """The codes of the training sample, computed once per open."""
        train = self.training_sample
        means, samples = self.model.posterior_codes(train.images, torch.Generator().manual_seed(self.config.seed))
        return TrainingCodes(means, samples, train.labels.numpy())

    @property
    def reference_name(self) -> str:
        """The split the figures show: validation (the test set is kept for evaluation), else training (as
        Data.reference)."""
        return "val" if len(self.split("val")) else "train"

    def reference_split(self) -> datalib.Split:
        return self.split(self.reference_name)

    def sample(self, n: int, sampler: str = samplers.DEFAULT, label: int | None = None, seed: int | None = None,
               components: int | None = None) -> torch.Tensor:
        """n images (N, C, H, W) in [0, 1] decoded from a sampler's codes (of one label for `class`; without one, a
        row per label), reproducible from seed: what `betavae sample RUN --sampler S --digit L --seed K` shows."""
        return samplers.sample_images(self, n, sampler, label, seed, components)


def load(path: str | Path, device: str = "cpu") -> VAE:
    """The trained model of a run folder (or of its model.safetensors), in eval mode.

    The model offers encode(x) -> (mean, logvar), decode(z) -> logits, sample(n), reconstruct(x) and
    posterior_means(images), with x a float tensor (N, C, H, W) in [0, 1].
    """
    return Run.open(path).load_model(device)
