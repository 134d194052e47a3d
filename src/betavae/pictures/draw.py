"""Figures of a model and its training: reconstructions, samples, interpolations, latent maps, traversals, curves.

Image grids are drawn with Pillow (milliseconds, so they can be made every epoch); figures with axes and legends use
matplotlib's Agg backend and are closed after saving. Every file is written atomically. Pixels shown are the
likelihood's mean images (Bernoulli means: pixel probabilities), not draws, unless a function says otherwise. Images
of one channel are drawn grey, of three in colour (RGB), by one conversion (`displayable`).
"""

from __future__ import annotations

import io
from pathlib import Path
from typing import Callable, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from PIL import Image, ImageDraw  # noqa: E402

from .. import atomic  # noqa: E402
from ..errors import BetaVAEError  # noqa: E402
from ..model import VAE  # noqa: E402

# Okabe-Ito (colour-blind safe) plus two distinct greys/browns for ten classes.
PALETTE = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000", "#999999",
           "#882255"]
SCALE, PAD = 2, 2


# --- saving -----------------------------------------------------------------------------------------------------------
def save_image(image: Image.Image, path: str | Path) -> Path:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    atomic.write_bytes(path, buffer.getvalue())
    return Path(path)


def save_figure(figure: plt.Figure, path: str | Path, dpi: int = 100) -> Path:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    atomic.write_bytes(path, buffer.getvalue())
    return Path(path)


def save_gif(frames: Sequence[Image.Image], path: str | Path, ms_per_frame: int = 400) -> Path:
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=list(frames[1:]), duration=ms_per_frame, loop=0)
    atomic.write_bytes(path, buffer.getvalue())
    return Path(path)


# --- image grids ------------------------------------------------------------------------------------------------------
def pixel_levels(images: torch.Tensor) -> np.ndarray:
    """Images (N,C,H,W) in [0,1] as 8-bit levels (N,C,H,W), rounded: what every picture and the report show."""
    return (images.detach().float().cpu().clamp(0, 1).numpy() * 255).round().astype(np.uint8)


def displayable(images: torch.Tensor) -> np.ndarray:
    """Images (N,C,H,W) in [0,1] as Pillow and matplotlib take them: grey (N,H,W) for 1 channel, RGB (N,H,W,3) for 3."""
    channels = images.shape[1]
    if channels not in (1, 3):
        raise BetaVAEError(f"images with {channels} channels cannot be shown; pictures take 1 (grey) or 3 (RGB)")
    levels = pixel_levels(images)
    return levels[:, 0] if channels == 1 else levels.transpose(0, 2, 3, 1)


def grid(images: torch.Tensor, ncol: int, scale: int = SCALE, pad: int = PAD) -> Image.Image:
    """Images (N,C,H,W) in [0,1] as a grid, grey or RGB, `ncol` per row, each pixel scale x scale, `pad` white
    between."""
    tiles = displayable(images)
    n, h, w = tiles.shape[:3]
    nrow = -(-n // ncol)
    canvas = np.full((nrow * (h + pad) + pad, ncol * (w + pad) + pad, *tiles.shape[3:]), 255, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, ncol)
        top, left = pad + r * (h + pad), pad + c * (w + pad)
        canvas[top: top + h, left: left + w] = tile
    picture = Image.fromarray(canvas, mode="L" if tiles.ndim == 3 else "RGB")
    return picture.resize((picture.width * scale, picture.height * scale), Image.NEAREST)


def captioned(image: Image.Image, caption: str) -> Image.Image:
    """The image with a line of text above it (Pillow's built-in font), in the image's mode (grey or RGB)."""
    out = Image.new(image.mode, (image.width, image.height + 14), "white")
    out.paste(image, (0, 14))
    ImageDraw.Draw(out).text((2, 1), caption, fill="black")
    return out


@torch.no_grad()
def reconstruction_grid(model: VAE, images: torch.Tensor, caption: str = "") -> Image.Image:
    """Ground truth in the top row, the reconstruction (decoded posterior mean) in the row below."""
    device = next(model.parameters()).device
    recon = model.reconstruct(images.to(device)).cpu()
    picture = grid(torch.cat([images.cpu(), recon]), ncol=len(images))
    return captioned(picture, caption) if caption else picture


@torch.no_grad()
def sample_grid(model: VAE, noise: torch.Tensor, ncol: int = 8, caption: str = "", draw: bool = False,
                seed: int = 0) -> Image.Image:
    """Decodings of latent codes (z ~ N(0, I), or a sampler's): the likelihood's mean images, or one draw of each
    pixel when draw=True."""
    device = next(model.parameters()).device
    output = model.decode(noise.to(device)).cpu()
    if draw:
        images = model.likelihood.sample(output, generator=torch.Generator().manual_seed(seed))
    else:
        images = model.likelihood.mean(output)
    picture = grid(images, ncol)
    return captioned(picture, caption) if caption else picture


def slerp(a: torch.Tensor, b: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation between two vectors (linear when they are parallel)."""
    cos = torch.dot(a, b) / (a.norm() * b.norm()).clamp_min(1e-12)
    omega = torch.arccos(cos.clamp(-1, 1))
    if omega.abs() < 1e-6:
        return torch.lerp(a, b, t[:, None])
    return (torch.sin((1 - t) * omega)[:, None] * a + torch.sin(t * omega)[:, None] * b) / torch.sin(omega)


@torch.no_grad()
def interpolation(model: VAE, first: torch.Tensor, second: torch.Tensor, steps: int = 16,
                  method: str = "linear") -> torch.Tensor:
    """Decoded mean images along the path between the posterior means of two images, endpoints included."""
    device = next(model.parameters()).device
    means = model.encode(torch.stack([first, second]).to(device))[0]
    t = torch.linspace(0, 1, steps, device=device)
    path = slerp(means[0], means[1], t) if method == "spherical" else torch.lerp(means[0], means[1], t[:, None])
    return model.decode_mean(path).cpu()


def interpolation_grid(model: VAE, pairs: Sequence[tuple[torch.Tensor, torch.Tensor]], steps: int = 16,
                       method: str = "linear") -> Image.Image:
    rows = [interpolation(model, a, b, steps, method) for a, b in pairs]
    return captioned(grid(torch.cat(rows), ncol=steps), f"{method} interpolation, {steps} steps, endpoints included")


# --- traversals -------------------------------------------------------------------------------------------------------
@torch.no_grad()
def traversal(model: VAE, image: torch.Tensor, dims: Sequence[int], values: torch.Tensor) -> torch.Tensor:
    """For each dimension in `dims`, decode the image's posterior mean with that one coordinate set to each value."""
    device = next(model.parameters()).device
    mean = model.encode(image[None].to(device))[0][0]
    codes = mean.repeat(len(dims) * len(values), 1)
    for row, dim in enumerate(dims):
        codes[row * len(values): (row + 1) * len(values), dim] = values.to(device)
    return model.decode_mean(codes).cpu()


def traversal_figure(model: VAE, image: torch.Tensor, kl_per_dim: Sequence[float], span: float = 3.0,
                     steps: int = 11, max_rows: int | None = None, row_labels: Sequence[str] | None = None
                     ) -> tuple[plt.Figure, list[int]]:
    """Rows = latent dimensions sorted by KL (largest first, KL printed beside), columns = values from -span to span."""
    order = [int(i) for i in np.argsort(-np.asarray(kl_per_dim), kind="stable")][:max_rows]
    values = torch.linspace(-span, span, steps)
    pictures = traversal(model, image, order, values)
    rows = [np.asarray(grid(pictures[r * steps: (r + 1) * steps], steps, scale=1, pad=1)) for r in range(len(order))]
    figure, axes = plt.subplots(len(order), 1, figsize=(steps * 0.45 + 1.6, len(order) * 0.5 + 0.5), squeeze=False)
    for r, (axis, dim) in enumerate(zip(axes[:, 0], order)):
        axis.imshow(rows[r], cmap="gray", vmin=0, vmax=255, interpolation="nearest")  # RGB rows ignore the cmap
        axis.set_xticks([]), axis.set_yticks([])
        label = row_labels[dim] if row_labels else ""
        axis.set_ylabel(f"z{dim}", rotation=0, ha="right", va="center", fontsize=8)
        axis.text(1.01, 0.5, f"KL {kl_per_dim[dim]:.2f} {label}".strip(), transform=axis.transAxes, va="center",
                  fontsize=8)
    axes[0, 0].set_title(f"latent traversals from {-span:g} to {span:g} around the posterior mean (rows by KL)",
                         fontsize=9)
    return figure, order


def traversal_gif(model: VAE, image: torch.Tensor, kl_per_dim: Sequence[float], span: float = 3.0,
                  steps: int = 21) -> list[Image.Image]:
    """Frames sweeping every dimension together from -span to span and back, one tile per dimension (by KL)."""
    order = [int(i) for i in np.argsort(-np.asarray(kl_per_dim), kind="stable")]
    values = torch.cat([torch.linspace(-span, span, steps), torch.linspace(span, -span, steps)[1:-1]])
    pictures = traversal(model, image, order, values).view(len(order), len(values), *image.shape)
    return [captioned(grid(pictures[:, j], ncol=min(len(order), 10)), f"z = {v:+.1f}") for j, v in enumerate(values)]


# --- latent maps ------------------------------------------------------------------------------------------------------
def pca_2d(fit_on: np.ndarray, seed: int = 0) -> Callable[[np.ndarray], np.ndarray]:
    """The projection to 2-D by scikit-learn's PCA fitted on some points: the one PCA of the figures and the report.
    With fewer than two components to find (one point, or one latent), the missing coordinates are zero."""
    from sklearn.decomposition import PCA

    k = max(0, min(2, len(fit_on) - 1, fit_on.shape[1]))
    pca = PCA(n_components=k, random_state=seed).fit(fit_on) if k > 0 else None

    def project(points: np.ndarray) -> np.ndarray:
        out = np.zeros((len(points), 2), np.float32)
        if pca is not None and len(points):
            out[:, :k] = pca.transform(points)
        return out

    return project


def reduce_2d(means_by_epoch: dict[int, np.ndarray], method: str = "pca", seed: int = 0
              ) -> tuple[dict[int, np.ndarray], bool]:
    """2-D embeddings per epoch and whether they share axes (PCA: fitted once on the last epoch and applied to all)."""
    if method == "pca":
        project = pca_2d(means_by_epoch[max(means_by_epoch)], seed)
        return {e: project(m) for e, m in means_by_epoch.items()}, True
    if method == "tsne":
        from sklearn.manifold import TSNE

        def embed(m: np.ndarray) -> np.ndarray:  # sklearn's perplexity (30) must stay below the points: fewer, less
            return TSNE(n_components=2, init="pca", perplexity=min(30.0, (len(m) - 1) / 3),
                        random_state=seed).fit_transform(m)
    elif method == "umap":
        try:
            import umap
        except ImportError:
            raise ImportError("UMAP needs the optional extra: pip install 'betavae[umap]'") from None
        embed = lambda m: umap.UMAP(n_components=2, random_state=seed).fit_transform(m)  # noqa: E731
    else:
        raise ValueError(f"unknown method {method!r}; choose pca, tsne or umap")
    return {e: embed(m) for e, m in means_by_epoch.items()}, False


def latent_map_figure(embeddings: dict[int, np.ndarray], labels: np.ndarray, method: str, shared: bool,
                      class_names: Sequence[str] | None = None) -> plt.Figure:
    """One panel per epoch, points coloured by class with a discrete legend."""
    epochs = sorted(embeddings)
    figure, axes = plt.subplots(1, len(epochs), figsize=(4 * len(epochs), 4.3), squeeze=False,
                                sharex=shared, sharey=shared)
    classes = sorted(set(int(c) for c in labels))
    for axis, epoch in zip(axes[0], epochs):
        points = embeddings[epoch]
        for c in classes:
            chosen = labels == c
            name = class_names[c] if class_names and 0 <= c < len(class_names) else str(c)
            axis.scatter(points[chosen, 0], points[chosen, 1], s=3, color=PALETTE[c % len(PALETTE)], label=name,
                         alpha=0.7, linewidths=0)
        axis.set_title(f"epoch {epoch}", fontsize=10)
        axis.set_xticks([]), axis.set_yticks([])
    axes[0, -1].legend(markerscale=4, fontsize=8, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    how = "PCA fitted once on the last epoch, shared axes" if shared else f"{method.upper()} fitted per epoch, " \
                                                                          "axes not comparable between panels"
    figure.suptitle(f"posterior means of {len(labels)} images in 2-D ({how})", fontsize=10)
    return figure


# --- curves -----------------------------------------------------------------------------------------------------------
def curves_figure(records: list[dict]) -> plt.Figure:
    """Recon, KL and negative ELBO per epoch for train and validation, KL per dimension as a heat map, active units."""
    epochs = [r["epoch"] for r in records]
    figure, axes = plt.subplots(1, 5, figsize=(22, 3.8))
    for axis, key, title in zip(axes[:3], ("recon", "kl", "neg_elbo"),
                                ("reconstruction (nats/image)", "KL (nats/image)", "negative ELBO (nats/image)")):
        for split, style in (("train", "-"), ("val", "--")):
            if all(split in r for r in records):
                axis.plot(epochs, [r[split][key] for r in records], style, marker=".", label=split)
        axis.set_title(title, fontsize=10)
        axis.set_xlabel("epoch")
        axis.legend(fontsize=8)
        if key != "kl" and len(records) > 1:
            tail = [r[s][key] for r in records[1:] for s in ("train", "val") if s in r]
            axis.set_ylim(min(tail) * 0.98, max(tail) * 1.05)  # epoch 0 would flatten the curve
    split = "val" if all("val" in r for r in records) else "train"
    heat = np.array([r[split]["kl_per_dim"] for r in records]).T
    image = axes[3].imshow(heat, aspect="auto", cmap="viridis", interpolation="nearest",
                           extent=(epochs[0] - 0.5, epochs[-1] + 0.5, heat.shape[0] - 0.5, -0.5))
    axes[3].set_title(f"KL per dimension ({split})", fontsize=10)
    axes[3].set_xlabel("epoch"), axes[3].set_ylabel("latent dimension")
    figure.colorbar(image, ax=axes[3], label="nats")
    active = [r[split].get("active_units") for r in records]
    if all(a is not None for a in active):
        axes[4].plot(epochs, active, marker=".")
    axes[4].set_ylim(0, heat.shape[0] + 0.5)
    axes[4].set_title(f"active units ({split}; Var E[z|x] > 0.01)", fontsize=10)
    axes[4].set_xlabel("epoch")
    return figure


def rate_distortion_figure(rows: list[dict], parameter: str = "beta") -> plt.Figure:
    """KL (rate) against reconstruction (distortion) per sweep point, with dotted lines of equal negative ELBO; points
    coloured by the swept value (beta, gamma, ...)."""
    figure, axis = plt.subplots(figsize=(6, 4.5))
    rate = np.array([r["kl"] for r in rows])
    distortion = np.array([r["recon"] for r in rows])
    elbo = rate + distortion
    for level in np.linspace(elbo.min(), elbo.max(), 5):
        xs = np.linspace(0, max(rate.max() * 1.1, 1), 50)
        axis.plot(xs, level - xs, ":", color="#999", linewidth=0.8)
        axis.annotate(f"{level:.0f}", (xs[-1], level - xs[-1]), fontsize=7, color="#777")
    symbol = {"beta": "β", "gamma": "γ"}.get(parameter, parameter)
    for value in sorted(set(r[parameter] for r in rows)):
        chosen = [i for i, r in enumerate(rows) if r[parameter] == value]
        axis.scatter(rate[chosen], distortion[chosen], s=30, label=f"{symbol} = {value:g}" if isinstance(value, float) else f"{symbol} = {value}", zorder=3)
    axis.set_xlabel("rate: KL (nats/image)")
    axis.set_ylabel("distortion: reconstruction (nats/image)")
    axis.set_ylim(distortion.min() * 0.95, distortion.max() * 1.05)
    axis.set_xlim(0, max(rate.max() * 1.1, 1))
    axis.legend(fontsize=8)
    axis.set_title(f"rate-distortion across {symbol} (dotted: equal negative ELBO)", fontsize=10)
    return figure


def information_figure(information: np.ndarray, factor_names: Sequence[str], kl_per_dim: Sequence[float]
                       ) -> plt.Figure:
    """Heat map of each latent's mutual information with each factor over the factor's entropy (rows by KL)."""
    order = [int(i) for i in np.argsort(-np.asarray(kl_per_dim), kind="stable")]
    shown = information[order]
    figure, axis = plt.subplots(figsize=(1.1 * len(factor_names) + 2, 0.42 * len(order) + 1.2))
    axis.imshow(shown, cmap="viridis", vmin=0, vmax=1, aspect="auto")
    for (row, column), value in np.ndenumerate(shown):
        axis.text(column, row, f"{value:.2f}", ha="center", va="center", fontsize=7,
                  color="white" if value < 0.6 else "black")
    axis.set_xticks(range(len(factor_names)), factor_names, fontsize=8)
    axis.set_yticks(range(len(order)), [f"z{d} (KL {kl_per_dim[d]:.1f})" for d in order], fontsize=8)
    axis.set_title("I(latent; factor) / H(factor), 20-bin codes", fontsize=9)
    return figure
