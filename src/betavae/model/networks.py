"""Encoders (image -> mean and log-variance of a diagonal Gaussian) and decoders (latent -> the parameters of the
likelihood p(x | z) that model/decoders.py defines: Bernoulli logits by default).

Two architectures: `mlp` (the description's 784-400-20 by default) and `conv` (strided convolutions, any image size;
without given channels, as many as the image size needs: `conv_channels`).
"""

from __future__ import annotations

import math
from typing import Callable, Protocol

import numpy as np
import torch
from torch import nn

from ..data import as_float
from ..errors import BetaVAEError, first_line
from .decoders import Bernoulli, Likelihood
from .decoders import build as build_likelihood

LOGVAR_RANGE = (-16.0, 16.0)  # keeps exp(logvar) finite in float32, so the KL cannot become inf or NaN
# Hidden-layer nonlinearities. SiLU (x * sigmoid(x)) trains the MLP to a lower loss in the same time than ReLU does
# (bench/time_to_quality.py --activation); ReLU stays the default, as in the description's notebook.
ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "silu": nn.SiLU}


def posterior_draw(mean: torch.Tensor, logvar: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """z = mean + sd * noise: a draw from q(z|x) for standard normal noise (the reparameterisation)."""
    return mean + noise * (0.5 * logvar).exp()


Posterior = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]


class VAE(nn.Module):
    """A Gaussian encoder and a decoder of the parameters of its likelihood (Bernoulli unless given). Inputs are float
    tensors (N,C,H,W) in [0,1]."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module, image_shape: tuple[int, int, int], latent_dim: int,
                 likelihood: Likelihood | None = None):
        super().__init__()
        self.encoder, self.decoder = encoder, decoder
        self.image_shape, self.latent_dim = tuple(image_shape), latent_dim
        self.likelihood = likelihood if likelihood is not None else Bernoulli(self.image_shape[0])
        self.output_shape = (self.likelihood.outputs * self.image_shape[0], *self.image_shape[1:])

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior mean and log-variance, each (N, latent_dim), of a user's images (`checked`). Bool images (binary
        data) are taken as 0/1."""
        return self._encode(self.checked(x))

    def _encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """`encode` without the checks: the training step's path, on images the data pipeline made."""
        mean, logvar = self.encoder(as_float(x)).chunk(2, dim=1)
        return mean, logvar.clamp(*LOGVAR_RANGE)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """The likelihood's parameters (Bernoulli logits, ...) of every pixel, (N, *output_shape)."""
        if not isinstance(z, torch.Tensor) or z.dim() != 2 or z.shape[1] != self.latent_dim:
            raise BetaVAEError(f"codes of shape {tuple(np.shape(z))}, but this model decodes a tensor (N, "
                               f"{self.latent_dim})")
        if not z.is_floating_point() or z.dtype == torch.float64:  # whole numbers or doubles from a user: as float32
            z = z.float()
        return self.decoder(z).view(len(z), *self.output_shape)

    def decode_mean(self, z: torch.Tensor) -> torch.Tensor:
        """The mean images (N, *image_shape) in [0, 1] of p(x | z): what figures show."""
        return self.likelihood.mean(self.decode(z))

    def forward(self, x: torch.Tensor, generator: torch.Generator | None = None, noise: torch.Tensor | None = None,
                posterior: Posterior | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The decoded likelihood parameters (logits, ...) of a reconstruction from one sampled z (N(0, I) noise
        given, or drawn), and the posterior's mean and log-variance (as `posterior` combines them, when given:
        Ada-GVAE averages a pair's shared latents)."""
        mean, logvar = self._encode(x)
        if posterior is not None:
            mean, logvar = posterior(mean, logvar)
        if noise is None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return self.decode(posterior_draw(mean, logvar, noise)), mean, logvar

    @torch.inference_mode()
    def posterior_means(self, images: torch.Tensor, batch_size: int = 1000) -> np.ndarray:
        """Posterior means (N, latent_dim) float32 of a whole image set, encoded batch by batch on the model's device
        (bit-packed images unpack one batch at a time)."""
        device = next(self.parameters()).device
        images = images if hasattr(images, "split") and not isinstance(images, np.ndarray) else self.checked(images)
        parts = [self._encode(self.checked(batch).to(device))[0].float().cpu() for batch in images.split(batch_size)]
        return torch.cat(parts).numpy() if parts else np.zeros((0, self.latent_dim), np.float32)

    @torch.inference_mode()
    def posterior_codes(self, images: torch.Tensor, generator: torch.Generator, batch_size: int = 1000
                        ) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and one draw z = mean + sd * noise per image (N, latent_dim) each, float32."""
        device = next(self.parameters()).device
        means, draws = [], []
        images = images if hasattr(images, "split") and not isinstance(images, np.ndarray) else self.checked(images)
        for batch in images.split(batch_size):
            mean, logvar = self._encode(self.checked(batch).to(device))
            noise = torch.randn(mean.shape, generator=generator).to(device)
            means.append(mean.float().cpu())
            draws.append(posterior_draw(mean, logvar, noise).float().cpu())
        empty = torch.zeros(0, self.latent_dim)
        return torch.cat(means or [empty]).numpy(), torch.cat(draws or [empty]).numpy()

    @torch.no_grad()
    def sample(self, n: int, generator: torch.Generator | None = None,
               sampler: Callable[[int, torch.Generator], torch.Tensor] | None = None) -> torch.Tensor:
        """Mean images of n decoded from z ~ N(0, I), or from z drawn by a fitted
        sampler (betavae.samplers: a mixture fitted to posterior draws of the training images, or one per label; a
        run draws with `Run.sample(n, sampler=..., label=...)`)."""
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_SAMPLES:
            raise BetaVAEError(f"n must be a whole number from 1 to {MAX_SAMPLES:,}, got {n!r} (draw more in several "
                               "calls)")
        device = next(self.parameters()).device
        if sampler is None:
            z = torch.randn(n, self.latent_dim, generator=generator, device=device)
        else:
            z = sampler(n, generator or torch.Generator().manual_seed(0)).to(device)
        return self.decode_mean(z)

    @torch.no_grad()
    def reconstruct(self, x: torch.Tensor) -> torch.Tensor:
        """Mean images of the decoding of each image's posterior mean (deterministic)."""
        return self.decode_mean(self.encode(x)[0])

    def checked(self, images: torch.Tensor) -> torch.Tensor:
        """Images as the model reads them, (N, *image_shape) in [0, 1] (or bool), else one line saying what they are:
        the public methods take a user's tensors, which torch would reject from deep inside or silently misread."""
        images = torch.from_numpy(images) if isinstance(images, np.ndarray) else images
        if not isinstance(images, torch.Tensor):
            raise BetaVAEError(f"images must be a torch tensor (or a numpy array), got {type(images).__name__}")
        if tuple(images.shape[1:]) != self.image_shape or images.dim() != 4:
            raise BetaVAEError(f"images of shape {tuple(images.shape)}, but this model reads (N, "
                               f"{', '.join(map(str, self.image_shape))}): channels, height, width")
        if images.dtype == torch.uint8:  # 8-bit pixels: their meaning is k/255
            return images.float().div_(255.0)
        if images.dtype != torch.bool and not images.is_floating_point():
            raise BetaVAEError(f"images of {images.dtype}; give floats in [0, 1], 8-bit pixels (uint8) or bools")
        if len(images) and not (torch.isfinite(images).all() and images.min() >= 0 and images.max() <= 1):
            raise BetaVAEError(f"images from {float(images.min()):g} to {float(images.max()):g}, but this model reads "
                               "finite values in [0, 1]: divide 8-bit pixels by 255")
        return images.float() if images.dtype == torch.float64 else images


MAX_SAMPLES = 100_000  # images one `sample` call decodes (as Run.sample): 10^9 would fail in torch's allocator


def mlp(sizes: list[int], activation: str = "relu") -> nn.Sequential:
    """Linear layers with the activation between them (none after the last)."""
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(ACTIVATIONS[activation]())
    return nn.Sequential(*layers)


def build_mlp(image_shape: tuple[int, int, int], latent_dim: int, hidden: tuple[int, ...],
              activation: str = "relu", likelihood: str = "bernoulli") -> VAE:
    pixels = math.prod(image_shape)
    distribution = build_likelihood(likelihood, image_shape[0])
    encoder = nn.Sequential(nn.Flatten(), mlp([pixels, *hidden, 2 * latent_dim], activation))
    decoder = mlp([latent_dim, *reversed(hidden), distribution.outputs * pixels], activation)
    return VAE(encoder, decoder, image_shape, latent_dim, distribution)


class ConvDecoder(nn.Module):
    """Dense layers to a small feature map, then 4x4 stride-2 transposed convolutions, cropped to the image size."""

    def __init__(self, latent_dim: int, hidden: tuple[int, ...], channels: tuple[int, ...],
                 image_shape: tuple[int, int, int], activation: str = "relu"):
        super().__init__()
        c, h, w = image_shape
        factor = 2 ** len(channels)
        self.start = (channels[-1], math.ceil(h / factor), math.ceil(w / factor))
        self.dense = nn.Sequential(mlp([latent_dim, *hidden, math.prod(self.start)], activation),
                                   ACTIVATIONS[activation]())
        ups: list[nn.Module] = []
        for n_in, n_out in zip(reversed(channels), [*reversed(channels[:-1]), c]):
            ups += [nn.ConvTranspose2d(n_in, n_out, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
        self.up = nn.Sequential(*ups[:-1])
        self.size = (h, w)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        x = self.up(self.dense(z).view(len(z), *self.start))
        return x[:, :, : self.size[0], : self.size[1]]


CONV_WIDTH = 32  # channels of each convolution the size rule adds, as in Burgess et al.'s model
SMALL_SIDE = 46  # shorter sides below it (28x28, 32x32) get 2 convolutions: from 46 on, 64 is nearer on a log scale


def conv_channels(image_shape: tuple[int, int, int]) -> tuple[int, ...]:
    """The convolutions for an image size when none are given: 32 then 64 channels for 28x28 and 32x32 (a 7x7 or 8x8
    map), Burgess et al.'s four of 32 for 64x64 (4x4), one more of 32 per doubling beyond (128: 5, 256: 6); sizes in
    between take the rule nearest them on a log scale (the shorter side counts)."""
    side = min(image_shape[1:])
    if side < SMALL_SIDE:
        return (32, 64)
    return (CONV_WIDTH,) * (4 + round(math.log2(side / 64)))


def build_conv(image_shape: tuple[int, int, int], latent_dim: int, hidden: tuple[int, ...],
               channels: tuple[int, ...] = (), activation: str = "relu", likelihood: str = "bernoulli") -> VAE:
    """The conv model for images (C, H, W); no `channels`: those `conv_channels` chooses for the size."""
    c, h, w = image_shape
    channels = channels or conv_channels(image_shape)
    distribution = build_likelihood(likelihood, c)
    size = min(h, w)
    for _ in channels:  # each 4x4 stride-2 convolution (padding 1) needs at least 2 pixels and halves them
        if size < 2:
            raise ValueError(too_small(h, w, len(channels)))
        size //= 2
    convs: list[nn.Module] = []
    for n_in, n_out in zip([c, *channels[:-1]], channels):
        convs += [nn.Conv2d(n_in, n_out, 4, stride=2, padding=1), ACTIVATIONS[activation]()]
    features = nn.Sequential(*convs, nn.Flatten())
    with torch.no_grad():
        n_features = features(torch.zeros(1, c, h, w)).shape[1]
    if n_features == 0:
        raise ValueError(too_small(h, w, len(channels)))
    encoder = nn.Sequential(features, mlp([n_features, *hidden, 2 * latent_dim], activation))
    decoder = ConvDecoder(latent_dim, hidden, channels, (distribution.outputs * c, h, w), activation)
    model = VAE(encoder, decoder, image_shape, latent_dim, distribution)
    # Channels-last weights take oneDNN's fast convolution path: in bf16 on CPUs with AMX the dSprites model trains
    # 1.8x as fast as fp32, 1.5x as fast as bf16 contiguous (bench/dsprites_data.py); only the memory layout changes.
    return model.to(memory_format=torch.channels_last)


def too_small(height: int, width: int, convolutions: int) -> str:
    """Why images cannot take a number of stride-2 convolutions, and the sizes that can."""
    side = 2 ** convolutions
    return (f"images of {width}x{height} are too small for {convolutions} stride-2 convolutions, which need "
            f"{side}x{side} or larger; give --image-size {side} or more (your own images)")


@torch.no_grad()
def init_output_bias(model: VAE, mean_image: torch.Tensor) -> None:
    """Start the decoder at the data's mean image: output biases = the likelihood's output of that mean (logit(mean
    pixel) for Bernoulli). Training then spends no early steps learning the background, which lowers the loss of short
    runs noticeably."""
    start = model.likelihood.initial_output(mean_image)
    last = [m for m in model.decoder.modules() if isinstance(m, (nn.Linear, nn.ConvTranspose2d))][-1]
    if isinstance(last, nn.Linear):
        last.bias.copy_(start.flatten())
    else:
        last.bias.copy_(start.mean(dim=(1, 2)))


class Architecture(Protocol):
    """What a model is built from (a run's Config has these fields)."""

    arch: str
    latent_dim: int
    hidden: tuple[int, ...]
    channels: tuple[int, ...]
    activation: str
    likelihood: str


def check_fits_in_memory(parameters: int) -> None:
    """Refuse a model whose training would take more memory than the machine has free: float32 weights, gradients
    and Adam's two moments, 16 bytes a parameter (widths each within bounds can still multiply to far too much)."""
    needed = 16 * parameters
    available = available_memory()
    if available and needed > available:
        raise BetaVAEError(f"the model has {parameters:,} parameters: training it takes about {needed / 2**30:.1f} GiB "
                           f"(weights, gradients and Adam's moments), more than the {available / 2**30:.1f} GiB of "
                           "memory free; lower --hidden, --channels or --latent-dim")


def available_memory() -> int:
    """Bytes of memory free for a new allocation (Linux's MemAvailable), or 0 when unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            fields = dict(line.split(":", 1) for line in meminfo)
        return int(fields["MemAvailable"].split()[0]) * 1024
    except (OSError, KeyError, ValueError):
        return 0


def build(config: Architecture, image_shape: tuple[int, int, int]) -> VAE:
    """The model a configuration describes, for images of the given (C, H, W); a one-line error when it cannot be
    built (images too small for the convolutions, or layers too large for memory)."""
    def made() -> VAE:
        if config.arch == "conv":
            return build_conv(image_shape, config.latent_dim, config.hidden, config.channels, config.activation,
                              config.likelihood)
        return build_mlp(image_shape, config.latent_dim, config.hidden, config.activation, config.likelihood)

    try:
        with torch.device("meta"):  # its size, before any memory is taken
            check_fits_in_memory(sum(p.numel() for p in made().parameters()))
        return made()
    except ValueError as error:
        raise BetaVAEError(f"{error}, fewer --channels, or --arch mlp") from None
    except (RuntimeError, MemoryError) as error:
        raise BetaVAEError(f"the model does not fit in memory ({first_line(error, 160)}); lower --hidden, --channels or "
                           "--latent-dim") from None
