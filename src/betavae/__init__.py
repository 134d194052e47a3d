"""betavae: train, evaluate and explore beta-variational autoencoders on MNIST and MNIST-like data."""

__version__ = "0.1.0"

from .config import Config, preset, resolve  # noqa: E402
from .errors import BetaVAEError  # noqa: E402
from .runs import load  # noqa: E402
from .training import train  # noqa: E402

__all__ = ["BetaVAEError", "Config", "load", "preset", "resolve", "train", "__version__"]
