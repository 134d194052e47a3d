"""Every sampler by name. Adding one is a class (a subclass of base.Sampler) and a line here: the CLI's --sampler
choices and help, the figures, `betavae evaluate`, the report and its explorer all come from this table."""

from __future__ import annotations

from ..errors import BetaVAEError
from .base import Sampler
from .gmm import MixtureSampler
from .labelled import ClassSampler
from .prior import PriorSampler

SAMPLERS: dict[str, type[Sampler]] = {cls.name: cls for cls in (
    PriorSampler,
    MixtureSampler,
    ClassSampler,
)}
NAMES = tuple(SAMPLERS)
DEFAULT = PriorSampler.name  # z ~ N(0, I), as the description asks, wherever no sampler is named
HELP = "; ".join(f"{name}: {cls.help}" for name, cls in SAMPLERS.items())
COMPONENTS_HELP = "mixture components (default " + ", ".join(
    f"{name} {cls.default_components}{' per label' if cls.by_label else ''}"
    for name, cls in SAMPLERS.items() if cls.fitted) + ")"


def get(name: str) -> type[Sampler]:
    """The sampler class of this name, or a one-line error naming the known ones."""
    try:
        return SAMPLERS[name]
    except (KeyError, TypeError):
        raise BetaVAEError(f"unknown sampler {name!r}; choose one of: {', '.join(NAMES)}") from None


def by_label() -> list[str]:
    """The samplers that draw by label (what --digit needs)."""
    return [name for name, cls in SAMPLERS.items() if cls.by_label]
