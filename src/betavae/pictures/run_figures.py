"""The figures of a run: which inputs they use, where they go, when training makes them, and the figure commands.

The inputs are fixed by the run's seed and data (the same validation images and the same noise at every epoch), so
what changes between epochs is the model alone. Everything lands under runs/<name>/figures/.
"""

from __future__ import annotations

import io
import re
import sys
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .. import atomic, samplers
from .. import data as datalib
from ..config import Config
from ..errors import BetaVAEError, first_line
from ..model import VAE
from ..runs import Run
from ..training.callbacks import EpochEnd
from . import draw as figures

LATENTS = "latents.npz"
MIN_MAP_POINTS = 10  # t-SNE and UMAP embed neighbourhoods: fewer images have none to speak of
N_RECONSTRUCTIONS, N_SAMPLES, N_PAIRS, STEPS = 10, 64, 4, 16


@dataclass(frozen=True)
class Inputs:
    """Fixed inputs of the figures: images to reconstruct, noise to decode, pairs to interpolate, images to map."""

    reconstruct: torch.Tensor
    noise: torch.Tensor
    pairs: list[tuple[int, int]]
    split: datalib.Split
    map_images: datalib.dataset.Images
    map_labels: np.ndarray

    @staticmethod
    def of(split: datalib.Split, config: Config) -> "Inputs":
        """The inputs for a run's figures, from its reference split (validation images, else training images)."""
        noise = torch.randn(N_SAMPLES, config.latent_dim, generator=torch.Generator().manual_seed(config.seed + 2))
        n_map = min(config.latent_map_size, len(split))
        return Inputs(datalib.as_float(split.images[:N_RECONSTRUCTIONS]), noise, default_pairs(split, N_PAIRS), split,
                      split.take(slice(0, n_map)).images, split.labels[:n_map].numpy())  # encoded per batch


def default_pairs(split: datalib.Split, n: int) -> list[tuple[int, int]]:
    """n pairs of images of different classes where labels allow it (first image of class 2k and of class 2k+1)."""
    labels = split.labels.tolist()
    pairs = []
    for k in range(n):
        a = next((i for i, y in enumerate(labels) if y == (2 * k) % 10), 2 * k)
        b = next((i for i, y in enumerate(labels) if y == (2 * k + 1) % 10), 2 * k + 1)
        pairs.append((a % len(labels), b % len(labels)))
    return pairs


# --- the figures, each from a model and fixed inputs ------------------------------------------------------------------
def save_reconstructions(model: VAE, inputs: Inputs, out: Path, epoch: int) -> Path:
    picture = figures.reconstruction_grid(model, inputs.reconstruct, f"epoch {epoch}: ground truth / reconstruction")
    return figures.save_image(picture, out / "reconstructions" / f"epoch_{epoch:03d}.png")


def save_samples(model: VAE, inputs: Inputs, out: Path, epoch: int) -> Path:
    picture = figures.sample_grid(model, inputs.noise, caption=f"epoch {epoch}: z ~ N(0,I), "
                                 f"{model.likelihood.title} means")
    return figures.save_image(picture, out / "samples" / f"epoch_{epoch:03d}.png")


def save_gif_of(folder: Path, target: Path) -> Path | None:
    frames = sorted(folder.glob("epoch_*.png"))
    if not frames:
        return None
    images = [Image.open(f) for f in frames]
    size, mode = images[-1].size, images[-1].mode  # grey frames stay grey, colour frames colour
    return figures.save_gif([im.convert(mode).resize(size) for im in images], target)


def save_interpolation(model: VAE, images: list[tuple[torch.Tensor, torch.Tensor]], out: Path,
                       method: str = "linear", steps: int = STEPS, name: str = "interpolation.png") -> Path:
    return figures.save_image(figures.interpolation_grid(model, images, steps, method), out / name)


def save_traversals(model: VAE, image: torch.Tensor, kl_per_dim: list[float], out: Path, span: float = 3.0) -> Path:
    figure, _ = figures.traversal_figure(model, image, kl_per_dim, span)
    figures.save_gif(figures.traversal_gif(model, image, kl_per_dim, span), out / "traversal.gif", ms_per_frame=80)
    return figures.save_figure(figure, out / "traversal.png")


def save_curves(run: Run) -> Path:
    run.last_record  # refuses a run without metrics, in one line
    return figures.save_figure(figures.curves_figure(run.metrics), run.figure_dir / "curves.png")


def save_latent_map(run: Run, method: str = "pca") -> Path:
    means, labels = read_latents(run.path, run.config.latent_dim, run.meta.run_id)
    if method in ("tsne", "umap") and len(labels) < MIN_MAP_POINTS:
        raise BetaVAEError(f"a {method} map needs at least {MIN_MAP_POINTS} images and this run's map has "
                           f"{len(labels)}; draw it with --method pca")
    try:
        embeddings, shared = figures.reduce_2d(means, method, run.config.seed)
    except ImportError as error:
        raise BetaVAEError(str(error)) from None
    figure = figures.latent_map_figure(embeddings, labels, method, shared)
    return figures.save_figure(figure, run.figure_dir / f"latent_map_{method}.png")


# --- posterior means captured during training -----------------------------------------------------------------------

def add_latents(run_dir: Path, epoch: int, means: np.ndarray, labels: np.ndarray, run_id: str = "") -> None:
    """Keep the posterior means of one epoch beside those of earlier epochs (rewritten atomically), with the run's id;
    a damaged file of earlier epochs, or another run's, is replaced, with a warning."""
    path = Path(run_dir) / LATENTS
    stored = {}
    if path.is_file():
        try:
            kept, kept_labels = load_latents(path, means.shape[1], run_id)
            if not np.array_equal(kept_labels, labels):
                raise ValueError(f"its labels are not those of the {len(labels)} images the latent map shows")
            stored = {f"epoch_{e}": m for e, m in kept.items()}
        except ValueError as error:
            print(f"betavae: warning: {path} was damaged ({error}); it now holds epoch {epoch} alone", file=sys.stderr)
    stored[f"epoch_{epoch}"] = means.astype(np.float32)
    stored["labels"] = labels
    if run_id:
        stored["run_id"] = np.array(run_id)
    buffer = io.BytesIO()
    np.savez(buffer, **stored)
    atomic.write_bytes(path, buffer.getvalue())


def read_latents(run_dir: Path, latent_dim: int | None = None, run_id: str = ""
                 ) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """The posterior means captured at each epoch (of latent_dim latents, when given) and their images' labels, or
    one line naming the file and the fix."""
    path = Path(run_dir) / LATENTS
    try:
        return load_latents(path, latent_dim, run_id)
    except FileNotFoundError:
        raise BetaVAEError(f"{run_dir} has no {LATENTS}; run betavae latent-map {run_dir} to capture them") from None
    except ValueError as error:
        raise BetaVAEError(f"{path} is damaged ({error}); delete it and run betavae latent-map {run_dir} again, "
                           "which captures the final model's means") from None


def load_latents(path: Path, latent_dim: int | None = None, run_id: str = ""
                 ) -> tuple[dict[int, np.ndarray], np.ndarray]:
    """latents.npz as training writes it: epoch_N arrays (images, latents) of floats, the images' labels and the run's
    id; ValueError saying what is wrong with anything else (a .npy, pickled objects, other keys, mismatched counts,
    another run's id)."""
    try:
        stored = np.load(path, allow_pickle=False)
        if not isinstance(stored, np.lib.npyio.NpzFile):
            raise ValueError("a single array, not an .npz archive")
        with stored:
            arrays = {key: stored[key] for key in stored.files}
    except FileNotFoundError:
        raise
    except (OSError, EOFError, zipfile.BadZipFile, zlib.error, NotImplementedError) as error:
        raise ValueError(f"not a readable .npz archive: {first_line(error, 80)}") from None
    except ValueError as error:  # numpy's own words would suggest loading the file unsafely
        numpy_says_pickled = "pickle" in str(error)  # of pickled arrays in an archive, and of any file not an array
        what = first_line(error, 80) if not numpy_says_pickled else "pickled data, which is never loaded" if \
            zipfile.is_zipfile(path) else "not arrays numpy wrote"
        raise ValueError(f"not a readable .npz archive: {what}") from None
    owner = arrays.pop("run_id", None)
    if owner is not None and (owner.dtype.kind != "U" or owner.ndim != 0):
        raise ValueError("its run_id is not a name")
    if owner is not None and run_id and str(owner) != run_id:
        raise ValueError(f"it belongs to another run, run id {str(owner)[:12]}")
    labels = arrays.pop("labels", None)
    if labels is None or labels.ndim != 1 or labels.dtype.kind not in "iu":
        raise ValueError("it has no labels array of whole numbers")
    if not arrays or not all(re.fullmatch("epoch_[0-9]{1,9}", key) for key in arrays):
        raise ValueError("it holds arrays other than epoch_N and labels, or no epoch_N")
    first = next(iter(arrays.values()))
    width = latent_dim or (first.shape[1] if first.ndim == 2 else -1)  # -1: no shape matches
    for key, means in arrays.items():
        if means.dtype.kind != "f" or means.shape != (len(labels), width):
            raise ValueError(f"{key} is {means.dtype} of shape {means.shape}, not floats of shape ({len(labels)}, "
                             f"{latent_dim or 'latents'}) for its {len(labels)} labels")
        if not np.isfinite(means).all():
            raise ValueError(f"{key} holds NaN or infinite numbers")
    return {int(key.split("_")[1]): means for key, means in arrays.items()}, labels


# --- the callback that draws while training --------------------------------------------------------------------------
class TrainingFigures:
    """Draws reconstructions and samples at config.figure_epochs, captures posterior means at
    config.latent_map_epochs, and at the last epoch makes the GIFs, the rest of the figures and the report."""

    def __init__(self, report: bool = True):
        self.inputs: Inputs | None = None
        self.report = report

    def __call__(self, end: EpochEnd) -> None:
        if self.inputs is None:
            self.inputs = Inputs.of(end.data.reference, end.config)
        out, model, epoch = end.run_dir / "figures", end.model, end.epoch
        if epoch in end.config.figure_epochs or end.is_last:
            save_reconstructions(model, self.inputs, out, epoch)
            save_samples(model, self.inputs, out, epoch)
        if epoch in end.config.latent_map_epochs or end.is_last:
            add_latents(end.run_dir, epoch, model.posterior_means(self.inputs.map_images), self.inputs.map_labels,
                        end.run_id)
        if end.is_last:
            self.finish(Run.open(end.run_dir, model=model, data=end.data), self.inputs)

    def finish(self, run: Run, inputs: Inputs) -> None:
        out, model = run.figure_dir, run.model
        save_gif_of(out / "reconstructions", out / "reconstructions.gif")
        save_gif_of(out / "samples", out / "samples.gif")
        pairs = [(datalib.as_float(inputs.split.images[a]), datalib.as_float(inputs.split.images[b]))
                 for a, b in inputs.pairs]
        save_interpolation(model, pairs, out)
        save_traversals(model, inputs.reconstruct[0], run.kl_per_dim, out)
        save_curves(run)
        save_latent_map(run, "pca")
        save_sampler_grids(run, run.config.seed + 2)
        if self.report:
            from .report import write_report

            write_report(run)


# --- the figure commands on a finished run ---------------------------------------------------------------------------
def image(run: Run, index: int, split: str | None = None) -> torch.Tensor:
    """One image of a split of the run's data (by default the reference split the figures show: validation, else
    training), as float (C,H,W), or a one-line error naming the valid range."""
    split = split or run.reference_name
    images = nonempty_split(run, split).images
    if not 0 <= index < len(images):
        raise BetaVAEError(f"image index {index} is out of range: the {split} split has {len(images)} images "
                           f"(0..{len(images) - 1})")
    return datalib.as_float(images[index])


def nonempty_split(run: Run, name: str) -> datalib.Split:
    split = run.split(name)
    if len(split) == 0:
        others = " or ".join(other for other in ("train", "val", "test") if other != name)
        raise BetaVAEError(f"the {name} split of this run is empty; choose --split {others}")
    return split


def image_file(run: Run, path: str | Path) -> torch.Tensor:
    """An image file as a (C,H,W) tensor in [0,1], grey or RGB as the model's images, read as a data set's images are
    (by meaning, upright, a decompression bomb refused), and refused unless it has their size."""
    from ..data.images import read_image

    c, h, w = run.image_shape
    if not Path(path).is_file():
        raise BetaVAEError(f"image {path} does not exist (or is not a file); check the path")
    pixels = read_image(Path(path))
    if c == 1 and pixels.ndim == 3:
        pixels = np.asarray(Image.fromarray(pixels).convert("L"))
    elif c == 3 and pixels.ndim == 2:
        pixels = np.repeat(pixels[..., None], 3, axis=2)
    if pixels.shape[:2] != (h, w):
        raise BetaVAEError(f"{path} is {pixels.shape[1]}x{pixels.shape[0]} but this model takes {w}x{h} images; "
                           "resize it first")
    array = pixels.astype(np.float32) / 255
    return torch.from_numpy(array.reshape(h, w, c)).permute(2, 0, 1).contiguous()


def reconstruct(run: Run, indices: list[int] | None = None, split: str = "val") -> Path:
    if indices:
        images = torch.stack([image(run, i, split) for i in indices])
    else:
        images = datalib.as_float(nonempty_split(run, split).images[:N_RECONSTRUCTIONS])
    picture = figures.reconstruction_grid(run.model, images, f"{split} images (top) and reconstructions (bottom)")
    return figures.save_image(picture, run.figure_dir / "reconstruction.png")


def sample(run: Run, n: int = 64, seed: int | None = None, draw: bool = False, sampler: str = samplers.DEFAULT,
           components: int | None = None, digit: int | None = None) -> Path:
    """A grid of n samples of the named sampler (of one label with digit), as Run.sample draws them."""
    seed = samplers.default_seed(run) if seed is None else seed
    codes = samplers.sample_codes(run, n, sampler, digit, seed, components)
    title = run.model.likelihood.title
    what = f"one {title} draw per pixel" if draw else f"{title} means"
    picture = figures.sample_grid(run.model, codes.z, codes.ncol, f"{codes.caption}, seed {seed}: {what}", draw, seed)
    name = samplers.get(sampler).figure_name(digit) + ("_drawn" if draw else "")
    return figures.save_image(picture, run.figure_dir / f"{name}.png")


def save_sampler_grids(run: Run, seed: int) -> list[Path]:
    """The fitted samplers' grids beside the prior's samples: 64 samples each, or a row of 10 per label."""
    fitted = [name for name in samplers.available(run) if samplers.get(name).fitted]
    return [sample(run, samplers.for_run(run, name).figure_size, seed, sampler=name) for name in fitted]


def interpolate(run: Run, pairs: list[tuple[int, int]] | None = None, files: list[str] | None = None,
                steps: int = STEPS, method: str = "linear") -> Path:
    if steps < 2:
        raise BetaVAEError(f"--steps must be at least 2 (the two endpoints), got {steps}")
    if files and pairs:
        raise BetaVAEError("give --images or --pairs, not both: the walk is between two files or between pairs of "
                           "the run's images")
    if files:
        if len(files) != 2:
            raise BetaVAEError(f"--images takes exactly two PNG files, got {len(files)}")
        images = [(image_file(run, files[0]), image_file(run, files[1]))]
    else:
        pairs = pairs or default_pairs(run.reference_split(), N_PAIRS)
        images = [(image(run, a), image(run, b)) for a, b in pairs]
    return save_interpolation(run.model, images, run.figure_dir, method, steps, f"interpolation_{method}.png")


def traverse(run: Run, index: int = 0, span: float = 3.0) -> Path:
    if not span > 0:
        raise BetaVAEError(f"--span must be positive, got {span}")
    return save_traversals(run.model, image(run, index), run.kl_per_dim, run.figure_dir, span)


def latent_map(run: Run, method: str = "pca") -> Path:
    """From the means captured during training; captured now from the final model when training kept none."""
    if not (run.path / LATENTS).exists():  # a folder in its place is damage, named by read_latents
        inputs = Inputs.of(run.reference_split(), run.config)
        add_latents(run.path, run.status["epoch"], run.model.posterior_means(inputs.map_images), inputs.map_labels,
                    run.meta.run_id)
    return save_latent_map(run, method)


def save_factor_figures(run: Run, result: dict) -> list[Path]:
    """The disentanglement figures of a run on a data set with ground-truth factors: each latent's information about
    each factor, and traversals of the data set's traversal image whose rows name the factor each latent captures
    best."""
    truth = datalib.ground_truth(run.config.dataset, "the factor figures show a run against ground-truth factors")
    information = np.array(result["details"]["mig"]["normalized_mutual_information"])
    names = tuple(result["factors"])  # the factors scored: those of more than one level
    heat = figures.save_figure(figures.information_figure(information, names, result["kl_per_dim"]),
                               run.figure_dir / "mutual_information.png")
    labels = factor_labels(information, names)
    figure, _ = figures.traversal_figure(run.model, truth.traversal_image(), result["kl_per_dim"], row_labels=labels)
    return [heat, figures.save_figure(figure, run.figure_dir / "traversal_factors.png")]


def factor_labels(normalized_information: np.ndarray, factor_names: tuple[str, ...]) -> list[str]:
    """For each latent, the factor it carries most information about, with that share of the factor's entropy."""
    return [f"{factor_names[int(np.argmax(row))]} {np.max(row):.2f}" for row in normalized_information]
