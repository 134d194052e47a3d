"""The figures of a run: which inputs they use, where they go, and when training makes them.

The inputs are fixed by the run's seed and data (the same validation images and the same noise at every epoch), so
what changes between epochs is the model alone. Everything lands under runs/<name>/figures/.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from . import atomic, figures, runs
from . import data as datalib
from .config import Config
from .errors import BetaVAEError
from .models import VAE
from .training import EpochEnd

LATENTS = "latents.npz"
N_RECONSTRUCTIONS, N_SAMPLES, N_PAIRS, STEPS = 10, 64, 4, 16


@dataclass(frozen=True)
class Inputs:
    """Fixed inputs of the figures: images to reconstruct, noise to decode, pairs to interpolate, images to map."""

    reconstruct: torch.Tensor
    noise: torch.Tensor
    pairs: list[tuple[int, int]]
    split: datalib.Split
    map_images: torch.Tensor
    map_labels: np.ndarray

    @staticmethod
    def of(data: datalib.Data, config: Config) -> "Inputs":
        split = reference_split(data)
        noise = torch.randn(N_SAMPLES, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 2))
        n_map = min(config.latent_map_size, len(split))
        return Inputs(datalib.as_float(split.images[:N_RECONSTRUCTIONS]), noise, default_pairs(split, N_PAIRS), split,
                      split.images[:n_map], split.labels[:n_map].numpy())


def reference_split(data: datalib.Data) -> datalib.Split:
    """Validation images (the test set is kept for final evaluation); training images when there is no validation."""
    return data.val if len(data.val) else data.train


def default_pairs(split: datalib.Split, n: int) -> list[tuple[int, int]]:
    """n pairs of images of different classes where labels allow it (first image of class 2k and of class 2k+1)."""
    labels = split.labels.tolist()
    pairs = []
    for k in range(n):
        a = next((i for i, y in enumerate(labels) if y == (2 * k) % 10), 2 * k)
        b = next((i for i, y in enumerate(labels) if y == (2 * k + 1) % 10), 2 * k + 1)
        pairs.append((a % len(labels), b % len(labels)))
    return pairs


def figure_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "figures"


# --- the figures, each from a model and fixed inputs ------------------------------------------------------------------
def save_reconstructions(model: VAE, inputs: Inputs, out: Path, epoch: int) -> Path:
    picture = figures.reconstruction_grid(model, inputs.reconstruct, f"epoch {epoch}: ground truth / reconstruction")
    return figures.save_image(picture, out / "reconstructions" / f"epoch_{epoch:03d}.png")


def save_samples(model: VAE, inputs: Inputs, out: Path, epoch: int) -> Path:
    picture = figures.sample_grid(model, inputs.noise, caption=f"epoch {epoch}: z ~ N(0,I), Bernoulli means")
    return figures.save_image(picture, out / "samples" / f"epoch_{epoch:03d}.png")


def save_gif_of(folder: Path, target: Path) -> Path | None:
    frames = sorted(folder.glob("epoch_*.png"))
    if not frames:
        return None
    images = [Image.open(f).convert("L") for f in frames]
    size = images[-1].size
    return figures.save_gif([im if im.size == size else im.resize(size) for im in images], target)


def save_interpolation(model: VAE, images: list[tuple[torch.Tensor, torch.Tensor]], out: Path,
                       method: str = "linear", steps: int = STEPS, name: str = "interpolation.png") -> Path:
    return figures.save_image(figures.interpolation_grid(model, images, steps, method), out / name)


def save_traversals(model: VAE, image: torch.Tensor, kl_per_dim: list[float], out: Path, span: float = 3.0) -> Path:
    figure, _ = figures.traversal_figure(model, image, kl_per_dim, span)
    figures.save_gif(figures.traversal_gif(model, image, kl_per_dim, span), out / "traversal.gif", ms_per_frame=80)
    return figures.save_figure(figure, out / "traversal.png")


def save_curves(run_dir: Path) -> Path:
    records = runs.read_metrics(run_dir)
    if not records:
        raise BetaVAEError(f"{run_dir} has no metrics yet; train it first")
    return figures.save_figure(figures.curves_figure(records), figure_dir(run_dir) / "curves.png")


def save_latent_map(run_dir: Path, method: str = "pca", seed: int = 0) -> Path:
    means, labels = read_latents(run_dir)
    embeddings, shared = figures.reduce_2d(means, method, seed)
    figure = figures.latent_map_figure(embeddings, labels, method, shared)
    return figures.save_figure(figure, figure_dir(run_dir) / f"latent_map_{method}.png")


# --- posterior means captured during training -----------------------------------------------------------------------
@torch.no_grad()
def posterior_means(model: VAE, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
    device = next(model.parameters()).device
    return torch.cat([model.encode(b.to(device))[0].cpu() for b in images.split(batch_size)]).numpy()


def add_latents(run_dir: Path, epoch: int, means: np.ndarray, labels: np.ndarray) -> None:
    """Keep the posterior means of one epoch beside those of earlier epochs (rewritten atomically)."""
    stored = {}
    path = Path(run_dir) / LATENTS
    if path.is_file():
        with np.load(path, allow_pickle=False) as old:
            stored = {k: old[k] for k in old.files}
    stored[f"epoch_{epoch}"] = means.astype(np.float32)
    stored["labels"] = labels
    buffer = io.BytesIO()
    np.savez(buffer, **stored)
    atomic.write_bytes(path, buffer.getvalue())


def read_latents(run_dir: Path) -> tuple[dict[int, np.ndarray], np.ndarray]:
    path = Path(run_dir) / LATENTS
    try:
        with np.load(path, allow_pickle=False) as stored:
            means = {int(k.split("_")[1]): stored[k] for k in stored.files if k.startswith("epoch_")}
            labels = stored["labels"]
    except FileNotFoundError:
        raise BetaVAEError(f"{run_dir} has no {LATENTS}; run betavae latent-map {run_dir} to capture them") from None
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as error:
        raise BetaVAEError(f"{path} is corrupt ({error}); delete it and run betavae latent-map again") from None
    return means, labels


# --- the callback that draws while training --------------------------------------------------------------------------
class TrainingFigures:
    """Draws reconstructions and samples at config.figure_epochs, captures posterior means at
    config.latent_map_epochs, and at the last epoch makes the GIFs, the rest of the figures and the report."""

    def __init__(self, report: bool = True):
        self.inputs: Inputs | None = None
        self.report = report

    def __call__(self, end: EpochEnd) -> None:
        if self.inputs is None:
            self.inputs = Inputs.of(end.data, end.config)
        out, model, epoch = figure_dir(end.run_dir), end.model, end.epoch
        if epoch in end.config.figure_epochs or end.is_last:
            save_reconstructions(model, self.inputs, out, epoch)
            save_samples(model, self.inputs, out, epoch)
        if epoch in end.config.latent_map_epochs or end.is_last:
            add_latents(end.run_dir, epoch, posterior_means(model, self.inputs.map_images), self.inputs.map_labels)
        if end.is_last:
            self.finish(end)

    def finish(self, end: EpochEnd) -> None:
        out, model, inputs = figure_dir(end.run_dir), end.model, self.inputs
        save_gif_of(out / "reconstructions", out / "reconstructions.gif")
        save_gif_of(out / "samples", out / "samples.gif")
        pairs = [(datalib.as_float(inputs.split.images[a]), datalib.as_float(inputs.split.images[b]))
                 for a, b in inputs.pairs]
        save_interpolation(model, pairs, out)
        kl = end.record.get("val", end.record["train"])["kl_per_dim"]
        save_traversals(model, inputs.reconstruct[0], kl, out)
        save_curves(end.run_dir)
        save_latent_map(end.run_dir, "pca", end.config.seed)
        if self.report:
            from .report import write_report

            write_report(end.run_dir, model=model, data=end.data)


# --- the figure commands on a finished run ---------------------------------------------------------------------------
@dataclass
class FinishedRun:
    """A finished run's model, data and fixed figure inputs, loaded once for the figure commands."""

    run_dir: Path
    config: Config
    model: VAE
    data: datalib.Data
    inputs: Inputs

    @staticmethod
    def open(run_dir: str | Path) -> "FinishedRun":
        run_dir = Path(run_dir)
        runs.require_finished(run_dir)
        config, _ = runs.read_config(run_dir)
        data = datalib.load(config.dataset, config.data_dir, config.val_size)
        return FinishedRun(run_dir, config, runs.load(run_dir), data, Inputs.of(data, config))

    @property
    def out(self) -> Path:
        return figure_dir(self.run_dir)

    def image(self, index: int, split: str = "val") -> torch.Tensor:
        images = self.split(split).images
        if not 0 <= index < len(images):
            raise BetaVAEError(f"image index {index} is out of range: the {split} split has {len(images)} images "
                               f"(0..{len(images) - 1})")
        return datalib.as_float(images[index])

    def split(self, name: str) -> datalib.Split:
        split = self.data.split(name)
        if len(split) == 0:
            raise BetaVAEError(f"the {name} split of this run is empty; choose --split train or test")
        return split

    def image_file(self, path: str | Path) -> torch.Tensor:
        """A PNG as a (C,H,W) tensor in [0,1], refused unless it has the model's size."""
        from PIL import UnidentifiedImageError

        try:
            with Image.open(path) as picture:
                array = np.asarray(picture.convert("L"), dtype=np.float32) / 255
        except FileNotFoundError:
            raise BetaVAEError(f"image {path} does not exist; check the path") from None
        except (OSError, UnidentifiedImageError) as error:
            raise BetaVAEError(f"{path} is not a readable image ({error})") from None
        _, h, w = self.model.image_shape
        if array.shape != (h, w):
            raise BetaVAEError(f"{path} is {array.shape[1]}x{array.shape[0]} but this model takes {w}x{h} images; "
                               "resize it first")
        return torch.from_numpy(array)[None]

    def last_kl(self) -> list[float]:
        last = runs.read_metrics(self.run_dir)[-1]
        return last.get("val", last["train"])["kl_per_dim"]


def reconstruct(run: FinishedRun, indices: list[int] | None = None, split: str = "val") -> Path:
    images = torch.stack([run.image(i, split) for i in indices]) if indices else run.split(split).images[:10]
    picture = figures.reconstruction_grid(run.model, images, f"{split} images (top) and reconstructions (bottom)")
    return figures.save_image(picture, run.out / "reconstruction.png")


def sample(run: FinishedRun, n: int = 64, seed: int | None = None, draw: bool = False) -> Path:
    if n < 1:
        raise BetaVAEError(f"--n must be at least 1, got {n}")
    seed = run.config.seed + 2 if seed is None else seed
    noise = torch.randn(n, run.config.latent_dim, generator=torch.Generator().manual_seed(seed))
    what = "one Bernoulli draw per pixel" if draw else "Bernoulli means"
    picture = figures.sample_grid(run.model, noise, min(n, 8), f"z ~ N(0,I), seed {seed}: {what}", draw, seed)
    return figures.save_image(picture, run.out / ("samples_drawn.png" if draw else "samples.png"))


def interpolate(run: FinishedRun, pairs: list[tuple[int, int]] | None = None, files: list[str] | None = None,
                steps: int = STEPS, method: str = "linear") -> Path:
    if steps < 2:
        raise BetaVAEError(f"--steps must be at least 2 (the two endpoints), got {steps}")
    if files:
        if len(files) != 2:
            raise BetaVAEError(f"--images takes exactly two PNG files, got {len(files)}")
        images = [(run.image_file(files[0]), run.image_file(files[1]))]
    else:
        images = [(run.image(a), run.image(b)) for a, b in (pairs or run.inputs.pairs)]
    return save_interpolation(run.model, images, run.out, method, steps, f"interpolation_{method}.png")


def traverse(run: FinishedRun, index: int = 0, span: float = 3.0) -> Path:
    if not span > 0:
        raise BetaVAEError(f"--span must be positive, got {span}")
    return save_traversals(run.model, run.image(index), run.last_kl(), run.out, span)


def latent_map(run: FinishedRun, method: str = "pca") -> Path:
    """From the means captured during training; captured now from the final model when training kept none."""
    if not (run.run_dir / LATENTS).is_file():
        means = posterior_means(run.model, run.inputs.map_images)
        add_latents(run.run_dir, runs.read_status(run.run_dir)["epoch"], means, run.inputs.map_labels)
    try:
        return save_latent_map(run.run_dir, method, run.config.seed)
    except ImportError as error:
        raise BetaVAEError(str(error)) from None
