"""Controlled capacity (Burgess et al. 2018): recon + gamma * |KL - C|, with C rising linearly from capacity_min to
capacity_max over capacity_steps steps, so the KL is let grow slowly instead of being pushed down."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ...errors import BetaVAEError
from .base import Objective, Penalty, Settings, Step, check_weights, linear_anneal, setting


@dataclass(frozen=True)
class CapacitySettings(Settings):
    gamma: float = setting(1000.0, "the weight of |KL - C|")
    capacity_min: float = setting(0.0, "C at step 0, in nats")
    capacity_max: float = setting(25.0, "C at the end of its ramp, in nats")
    capacity_steps: int = setting(100_000, "steps over which C rises from capacity_min to capacity_max")

    def check(self) -> None:
        check_weights(self, "gamma", "capacity_min", "capacity_max", "capacity_steps")
        if self.capacity_min > self.capacity_max:
            raise BetaVAEError(f"capacity_min ({self.capacity_min}) is above capacity_max ({self.capacity_max}); the "
                               "capacity rises from min to max: swap them")


class CapacityLoss(Objective):
    name, Settings, paper = "capacity", CapacitySettings, "controlled capacity (Burgess et al. 2018)"

    def capacity(self, step: Step) -> float | torch.Tensor:
        s = self.settings
        return linear_anneal(s.capacity_min, s.capacity_max, step, s.capacity_steps)

    def penalty(self, kl_per_dim, mean, logvar, z, step) -> Penalty:
        return self.settings.gamma * (kl_per_dim.sum() - self.capacity(step)).abs(), {}

    def logged(self, step: int) -> dict[str, float]:
        return {"capacity": float(self.capacity(step))}

    def describe(self) -> str:
        s = self.settings
        return (f"capacity: loss = recon + {s.gamma:g} * |KL - C|, C from {s.capacity_min:g} to {s.capacity_max:g} "
                f"nats over {s.capacity_steps} steps")
