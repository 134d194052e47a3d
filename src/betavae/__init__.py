"""betavae: train, evaluate and explore beta-variational autoencoders on MNIST and MNIST-like data.

The package in the order its layers build on each other (a module imports only from layers before its own):

    errors, atomic, version   one-line errors, atomic writes
    data                      data sets by name (registry), sources, splits as tensors
    model                     encoders and decoders, objectives (each with its own settings), likelihood estimates
    config                    the validated run configuration (the objective's settings included) and presets
    training                  the loop, checkpoints and resume, the run folder's files, CUDA graphs, DDP and Ray
    samplers                  where generated codes come from: the prior, a fitted mixture, a mixture per label
    runs                      a run folder opened once (`Run`)
    pictures, evaluation      figures and the report; likelihoods, sample quality, disentanglement
    api, sweep                what a user does: train or resume with the default figures, disentangle, sweep,
                              select among seeds (UDR), train several seeds and keep the best
    cli                       the command line, a thin layer over the above
"""

from . import samplers
from .api import disentangle, resume, select, train
from .config import Config, preset, resolve
from .errors import BetaVAEError
from .runs import Run, load
from .sweep import train_seeds
from .version import __version__

__all__ = ["BetaVAEError", "Config", "Run", "disentangle", "load", "preset", "resolve", "resume", "samplers",
           "select", "train", "train_seeds", "__version__"]
