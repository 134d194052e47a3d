"""dSprites rendered from its factors (first part of the disentanglement issue; not yet wired into training).

The grid of the original: shape (square, ellipse, heart) x scale (6 values, 0.5 to 1) x orientation (40 values,
linspace(0, 2*pi, 40), both ends included) x position x and y (32 values each, linspace(0, 1, 32)): 737,280
binary 64x64 images, indexed in that order. Each image is rendered analytically: a pixel is on when its centre,
mapped into the shape's own frame (translated, rotated, scaled), lies inside the shape; the heart is the closed
curve (x^2 + y^2 - 1)^3 = x^2 y^3. Positions map to centres in [0.2, 0.8] of the frame and the largest shape has
a circumradius of 0.18, so every shape stays inside the frame, as in the original.
"""

from __future__ import annotations

import math

import numpy as np
import torch

FACTORS = ("shape", "scale", "orientation", "pos_x", "pos_y")
SIZES = (3, 6, 40, 32, 32)
SHAPES = ("square", "ellipse", "heart")
SIZE = 64
CENTRE_RANGE = (0.2, 0.8)
MAX_RADIUS = 0.18  # circumradius of every shape at scale 1, in frame units
# Half-size of each canonical shape so that its circumradius at scale 1 is MAX_RADIUS.
CANONICAL_RADIUS = {"square": math.sqrt(2.0), "ellipse": 1.0, "heart": 1.35}  # heart: measured on a fine grid


def factor_values() -> list[np.ndarray]:
    """The value of each factor level (shape as 0, 1, 2)."""
    return [np.arange(3.0), np.linspace(0.5, 1.0, 6), np.linspace(0.0, 2 * np.pi, 40),
            np.linspace(0.0, 1.0, 32), np.linspace(0.0, 1.0, 32)]


def index_to_factors(index: np.ndarray) -> np.ndarray:
    """Image indices -> (N, 5) factor levels, in the original's order."""
    return np.stack(np.unravel_index(np.asarray(index), SIZES), axis=1)


def factors_to_index(factors: np.ndarray) -> np.ndarray:
    return np.ravel_multi_index(tuple(np.asarray(factors).T), SIZES)


def _inside(shape: int, p: torch.Tensor, q: torch.Tensor) -> torch.Tensor:
    if SHAPES[shape] == "square":
        return torch.maximum(p.abs(), q.abs()) <= 1.0
    if SHAPES[shape] == "ellipse":
        return p.pow(2) + (q / 0.5).pow(2) <= 1.0
    y = -q + 0.1  # image rows grow downwards; lift the heart so it is centred in its circumcircle
    return (p.pow(2) + y.pow(2) - 1.0).pow(3) - p.pow(2) * y.pow(3) <= 0.0


def render(factors: np.ndarray | torch.Tensor) -> torch.Tensor:
    """Binary images (N, 1, 64, 64) float32 of the given factor levels (N, 5)."""
    levels = torch.as_tensor(np.asarray(factors), dtype=torch.long)
    values = factor_values()
    centres = (torch.arange(SIZE, dtype=torch.float64) + 0.5) / SIZE
    v, u = torch.meshgrid(centres, centres, indexing="ij")
    out = torch.zeros(len(levels), 1, SIZE, SIZE)
    low, high = CENTRE_RANGE
    for shape in range(3):
        chosen = (levels[:, 0] == shape).nonzero().flatten()
        if len(chosen) == 0:
            continue
        f = levels[chosen]
        scale = torch.as_tensor(values[1])[f[:, 1]][:, None, None]
        angle = torch.as_tensor(values[2])[f[:, 2]][:, None, None]
        cx = (low + (high - low) * torch.as_tensor(values[3])[f[:, 3]])[:, None, None]
        cy = (low + (high - low) * torch.as_tensor(values[4])[f[:, 4]])[:, None, None]
        half = scale * MAX_RADIUS / CANONICAL_RADIUS[SHAPES[shape]]
        du, dv = u - cx, v - cy
        cos, sin = torch.cos(angle), torch.sin(angle)
        p = (cos * du + sin * dv) / half
        q = (-sin * du + cos * dv) / half
        out[chosen, 0] = _inside(shape, p, q).float()
    return out
