"""betavae: train, evaluate and explore beta-variational autoencoders on MNIST and MNIST-like data.

The package in the order its layers build on each other (a module imports only from layers before its own):

    errors, atomic, version   one-line errors, atomic writes
    data                      data sets by name (registry), sources, splits as tensors
    config                    the validated run configuration and presets
    model                     encoders and decoders, objectives, likelihood estimates
    training                  the loop, checkpoints and resume, the run folder's files, CUDA graphs, DDP and Ray
    runs                      a run folder opened once (`Run`)
    samplers                  where generated codes come from: the prior, a fitted mixture, a mixture per label
    pictures, evaluation      figures and the report; likelihoods, sample quality, disentanglement
    api, sweep                what a user does: train or resume with the default figures, disentangle, sweep
    cli                       the command line, a thin layer over the above
"""

from . import samplers
from .api import disentangle, resume, train
from .config import Config, preset, resolve
from .errors import BetaVAEError
from .runs import Run, load
from .version import __version__

__all__ = ["BetaVAEError", "Config", "Run", "disentangle", "load", "preset", "resolve", "resume", "samplers",
           "train", "__version__"]
