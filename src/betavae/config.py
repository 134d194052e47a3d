"""The run configuration: one validated dataclass, named presets, TOML files and command-line overrides.

The objective's knobs are not fields here: `objective` names it and `objective_settings` holds that objective's own
settings class (model/objectives/), so each objective's names and defaults live in one place, its own module.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Mapping

from .data.registry import check_name as check_dataset_name
from .errors import BetaVAEError
from .model.decoders import LIKELIHOODS
from .model.objectives import OBJECTIVES, BetaSettings, Context, Objective, Settings
from .model.objectives.base import check_choice

ARCHS = ("mlp", "conv")
ACTIVATIONS = ("relu", "silu")
PIXELS = ("grey", "binary")
LR_SCHEDULES = ("none", "cosine")
DEVICES = ("cpu", "cuda", "auto")
PRECISIONS = ("fp32", "bf16")
# Bounds far above any useful value, so that a typo (an extra digit, 2**63) is one line, not a crash deep in torch.
# Seeds are 32-bit: numpy's are, and torch's generators take the same values.
AT_MOST = {"latent_dim": 4096, "batch_size": 2**20, "epochs": 10**6, "val_size": 10**9, "threads": 1024,
           "latent_map_size": 10**7, "time_budget": 10**9, "seed": 2**32 - 1, "layer": 2**16}
MAX_LR = 10.0  # to divide it by 10 after a divergence would otherwise loop for ever
IMAGE_SIZES = (4, 1024)  # the sides --image-size may ask for (0 keeps the images as stored)


@dataclass(frozen=True)
class Config:
    """Everything that determines a run. Validated on construction; saved resolved in each run's config.json."""

    # data: a named data set, or a path to an .npz file or a folder of images (docs/own-images.md)
    dataset: str = "mnist"
    data_dir: str | None = None
    val_size: int = 10000
    pixels: str = "grey"
    image_size: int = 0  # the user's own images center-cropped and resized to image_size squared; 0: as stored
    # model
    arch: str = "mlp"
    hidden: tuple[int, ...] = (400,)
    channels: tuple[int, ...] = ()  # conv widths; empty: chosen by image size (model/networks.py, conv_channels)
    activation: str = "relu"
    latent_dim: int = 20
    likelihood: str = "bernoulli"  # the decoder's distribution of pixels (model/decoders.py)
    # objective: its name and its own settings (each objective's module holds their names and defaults)
    objective: str = "beta"
    objective_settings: Settings = field(default_factory=BetaSettings)
    # optimisation
    lr: float = 1e-3
    lr_schedule: str = "none"
    batch_size: int = 128
    epochs: int = 20
    time_budget: float = 0.0
    seed: int = 1
    device: str = "cpu"
    precision: str = "fp32"
    threads: int = 0
    cuda_graphs: bool = True  # on one CUDA device, replay each step's forward and backward as a CUDA graph
    # figures made while training (epochs at which to draw; the last epoch is always drawn)
    figure_epochs: tuple[int, ...] = (0, 1, 2, 5, 10, 20, 50, 100)
    latent_map_epochs: tuple[int, ...] = (0, 5, 10)
    latent_map_size: int = 5000

    def __post_init__(self) -> None:
        check_choice("arch", self.arch, ARCHS)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("objective", self.objective, tuple(OBJECTIVES))
        check_choice("pixels", self.pixels, PIXELS)
        check_choice("likelihood", self.likelihood, tuple(LIKELIHOODS))
        if self.likelihood == "logistic" and self.pixels == "binary":
            raise BetaVAEError("the logistic likelihood is of 8-bit pixels, not binary ones; use --pixels grey with "
                               "--likelihood logistic, or --likelihood bernoulli for binary pixels")
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("device", self.device, DEVICES)
        check_choice("precision", self.precision, PRECISIONS)
        check_dataset_name(self.dataset)
        if not isinstance(self.objective_settings, OBJECTIVES[self.objective].Settings):
            raise BetaVAEError(f"the {self.objective} objective takes {OBJECTIVES[self.objective].Settings.__name__}, "
                               f"not {type(self.objective_settings).__name__}")
        for name in ("latent_dim", "batch_size"):
            _check_range(name, getattr(self, name), 1)
        _check_range("latent_map_size", self.latent_map_size, 2)  # a map of fewer points shows nothing
        if self.batch_size < OBJECTIVES[self.objective].min_batch:
            raise BetaVAEError(f"the {self.objective} objective estimates its penalty across the batch, so it needs "
                               f"--batch-size {OBJECTIVES[self.objective].min_batch} at least (64 is usual), got "
                               f"{self.batch_size}")
        for name in ("epochs", "val_size", "seed", "threads", "time_budget"):
            _check_range(name, getattr(self, name), 0)
        if not (0 < self.lr <= MAX_LR and math.isfinite(self.lr)):  # beyond it Adam diverges at once, and the advice
            raise BetaVAEError(f"lr must be a number above 0 and at most {MAX_LR:g}, got {self.lr}; try --lr 1e-3")
        for name, example in (("hidden", "400"), ("channels", "32,64")):
            widths = getattr(self, name)
            empty_ok = name == "channels"  # no channels: chosen by image size
            if (not widths and not empty_ok) or any(not 1 <= width <= AT_MOST["layer"] for width in widths):
                raise BetaVAEError(f"{name} must list layer sizes from 1 to {AT_MOST['layer']}, got "
                                   f"{','.join(map(str, widths)) or 'none'}; try --{name} {example}")
        if self.image_size and not IMAGE_SIZES[0] <= self.image_size <= IMAGE_SIZES[1]:
            raise BetaVAEError(f"image_size must be 0 (as stored) or from {IMAGE_SIZES[0]} to {IMAGE_SIZES[1]}, got "
                               f"{self.image_size}; fix --image-size")
        for name in ("figure_epochs", "latent_map_epochs"):
            if any(not 0 <= epoch <= AT_MOST["epochs"] for epoch in getattr(self, name)):
                raise BetaVAEError(f"{name} lists epochs, which are from 0 to {AT_MOST['epochs']:g}; fix "
                                   f"--{name.replace('_', '-')}")

    @classmethod
    def of(cls, **values: Any) -> "Config":
        """A Config from keyword values, the objective's settings given flat: Config.of(beta=1.0, hidden=(32,))."""
        return from_dict(values)

    @property
    def settings(self) -> dict[str, Any]:
        """The objective's settings as plain values."""
        return self.objective_settings.to_dict()

    def build_objective(self, dataset_size: int = 1) -> Objective:
        """The objective this configuration names (`dataset_size`: the training images, which beta-TCVAE needs)."""
        return OBJECTIVES[self.objective](self.objective_settings, Context(self.latent_dim, dataset_size, self.seed))

    def replace(self, **changes: Any) -> "Config":
        """A copy with some fields or objective settings changed (validated again). A new objective starts from its
        own defaults."""
        values = self.to_dict()
        if changes.get("objective", self.objective) != self.objective:
            del values[self.objective]
        return from_dict({**values, **changes})

    def flat(self) -> dict[str, Any]:
        """Every field and objective setting by its own name (settings never share a field's name)."""
        values = self.to_dict()
        return {**{k: v for k, v in values.items() if k != self.objective}, **values[self.objective]}

    def to_dict(self) -> dict[str, Any]:
        """Plain values: the fields, with the objective's settings under the objective's name."""
        plain = {f.name: (list(v) if isinstance(v, tuple) else v) for f in fields(self) for v in [getattr(self, f.name)]}
        del plain["objective_settings"]
        return {**plain, self.objective: self.settings}


def _check_range(name: str, value: float, low: float) -> None:
    high = AT_MOST[name]
    if not (low <= value <= high and math.isfinite(value)):
        raise BetaVAEError(f"{name} must be from {low} to {high:g}, got {value}; fix --{name.replace('_', '-')}")


# Named presets: overrides of the defaults above. Objective settings are given flat: they apply to the preset's
# objective. Why each preset is what it is, with the measurements behind it: docs/usage.md#presets.
PRESETS: dict[str, dict[str, Any]] = {
    # The notebook behind the description's figures (see notes.md), with beta left at 1 as it was.
    "description": dict(beta=1.0, batch_size=256, epochs=100, seed=1, hidden=(400,), latent_dim=20),
    # The plain VAE: beta = 1. Adam 5e-3 with cosine decay (bench/training.py compares it with a constant 1e-3).
    "vae": dict(beta=1.0, lr=5e-3, lr_schedule="cosine"),
    # The default beta-VAE: beta = 4, as Higgins et al. (2017) used for their disentanglement results.
    "betavae": dict(beta=4.0, lr=5e-3, lr_schedule="cosine"),
    # A convolutional beta-VAE for 28x28 images: 2 convolutions (32, 64), chosen by the size (as for every preset,
    # the convolutions follow the image size: conv_channels in model/networks.py).
    "conv": dict(arch="conv", hidden=(256,), beta=4.0),
    # Controlled capacity: gamma 100, not Burgess et al.'s 1000, at which the encoder met the KL target with
    # input-independent means on dSprites (docs/dsprites.md).
    "capacity": dict(objective="capacity", gamma=100.0),
}
# dSprites with the convolutional model of Burgess et al. (2018): four 4x4 stride-2 convolutions of 32 channels (what
# the size rule chooses for 64x64), two dense layers of 256, 10 latents, batch 64. Adam 1e-3 with cosine decay rather than their 5e-4 constant, because a CPU
# run sees about a tenth of their 300k steps. Every dSprites preset shares this model and optimiser, so that the
# objectives compare on equal terms (Chen et al. used batch 2048; Kim and Mnih Adam 1e-4 for the model).
DSPRITES = dict(dataset="dsprites", pixels="binary", arch="conv", hidden=(256, 256),
                latent_dim=10, batch_size=64, lr=1e-3, lr_schedule="cosine", epochs=30,
                figure_epochs=(0, 1, 2, 5, 10, 20), latent_map_epochs=(0, 1, 5))
PRESETS.update({
    "dsprites": {**DSPRITES, "beta": 4.0},
    # Each objective below with its own module's defaults, which are its paper's settings on dSprites.
    "btcvae": {**DSPRITES, "objective": "btcvae"},
    "factorvae": {**DSPRITES, "objective": "factorvae"},
    "dipvae": {**DSPRITES, "objective": "dipvae"},
    "adagvae": {**DSPRITES, "objective": "adagvae"},
})
# The user's own colour (or grey) images at 64x64 with the dSprites model (Burgess et al.'s), grey levels as targets;
# at 128x128 the same with the fifth convolution the size rule adds.
PRESETS["conv64"] = {**{key: DSPRITES[key] for key in ("arch", "hidden", "latent_dim", "batch_size", "lr",
                                                       "lr_schedule")}, "pixels": "grey", "beta": 4.0, "image_size": 64}
PRESETS["conv128"] = {**PRESETS["conv64"], "image_size": 128}
# The recipe with the best median MIG over seeds here (docs/dsprites.md): Ada-GVAE with beta 4. It needs ground-truth
# factors. Seeds 1-3 at 8 minutes of one core: MIG median 0.384 against 0.141 for beta 1, and 0.385 for beta 8 (a tie
# within the seeds' spread, settled by beta 4's reconstruction, 10 nats better per image).
PRESETS["disentangle"] = {**PRESETS["adagvae"], "beta": 4.0}
DEFAULT_PRESET = "betavae"
CONFIG_FIELDS = tuple(f.name for f in fields(Config) if f.name != "objective_settings")
for _kind in OBJECTIVES.values():  # a setting named like a field could not be given flat
    assert not set(_kind.Settings.names()) & set(CONFIG_FIELDS), f"{_kind.name} has a setting named like a field"


def preset(name: str) -> Config:
    """The configuration of a named preset."""
    if name not in PRESETS:
        raise BetaVAEError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}")
    return from_dict(PRESETS[name])


def from_dict(values: Mapping[str, Any], base: Config | None = None, typed: bool = False) -> Config:
    """A Config from plain values (a TOML table, JSON, command-line strings) on top of `base`, coercing types (with
    `typed`, values from a typed file: a string where a number, a flag or a list belongs is refused). The objective's
    settings come flat (beta=4) or as a table under its name ({"beta": {"beta": 4}}); naming another objective starts
    from that objective's defaults."""
    base, values = base or Config(), dict(values)
    name = coerce("objective", str, values.pop("objective", base.objective))
    if name not in OBJECTIVES:
        raise BetaVAEError(f"unknown objective {name!r}; choose one of: {', '.join(OBJECTIVES)}")
    kind = OBJECTIVES[name]
    settings = base.settings if name == base.objective else {}
    table = values.pop(name) if isinstance(values.get(name), Mapping) else {}  # flat beta=4 is not the beta table
    settings = {**settings, **table, **{key: values.pop(key) for key in list(values) if key in kind.Settings.names()}}
    other = next((key for key, value in values.items() if key in OBJECTIVES and isinstance(value, Mapping)), None)
    if other:  # [dipvae] while the objective is another
        raise BetaVAEError(f"a [{other}] table holds the {other} objective's settings, but the objective is {name}: "
                           f"choose it with objective = \"{other}\" (or --objective {other})")
    _refuse_unknown(name, set(values) - set(CONFIG_FIELDS), set(settings) - set(kind.Settings.names()))
    hints = typing.get_type_hints(Config)
    coerced = {key: coerce(key, hints[key], value, typed) for key, value in values.items()}
    setting_hints = typing.get_type_hints(kind.Settings)
    objective_settings = kind.Settings(**{key: coerce(key, setting_hints[key], v, typed) for key, v in settings.items()})
    return dataclasses.replace(base, objective=name, objective_settings=objective_settings, **coerced)


def _refuse_unknown(objective: str, keys: set[str], settings: set[str]) -> None:
    """One line for keys that are neither fields nor settings of the chosen objective, saying whose they are."""
    unknown = sorted(keys | settings)
    if not unknown:
        return
    owners = {key: [n for n, kind in OBJECTIVES.items() if key in kind.Settings.names()] for key in unknown}
    if all(owners.values()):
        whose = "; ".join(f"{key} is a setting of {', '.join(names)}" for key, names in owners.items())
        raise BetaVAEError(f"the {objective} objective has no setting {', '.join(unknown)} ({whose}); its settings "
                           f"are: {', '.join(OBJECTIVES[objective].Settings.names())}")
    raise BetaVAEError(f"unknown configuration key(s): {', '.join(unknown)}; known keys: {', '.join(CONFIG_FIELDS)}, "
                       f"and the {objective} objective's settings: {', '.join(OBJECTIVES[objective].Settings.names())}")


# config.json of format 0 and 1 held every objective's settings as flat fields: old name -> (objective, new name).
LEGACY_SETTINGS = {
    "beta": [("beta", "beta"), ("adagvae", "beta")], "beta_warmup_steps": [("beta", "beta_warmup_steps")],
    "beta_start": [("beta", "beta_start")], "gamma": [("capacity", "gamma")],
    "capacity_min": [("capacity", "capacity_min")], "capacity_max": [("capacity", "capacity_max")],
    "capacity_steps": [("capacity", "capacity_steps")], "mi_weight": [("btcvae", "alpha")],
    "tc_weight": [("btcvae", "beta"), ("factorvae", "gamma")], "dimwise_weight": [("btcvae", "gamma")],
    "tc_estimator": [("btcvae", "estimator")], "discriminator_lr": [("factorvae", "discriminator_lr")],
    "dip_type": [("dipvae", "type")], "dip_offdiagonal": [("dipvae", "lambda_od")], "dip_diagonal": [],
}


def from_saved(values: Mapping[str, Any], layout: int) -> Config:
    """The Config of a run's config.json; layouts before 2 (flat objective fields) are mapped to the objective's own
    settings, keeping only those the objective read."""
    if layout >= 2:
        return from_dict(values)
    values, objective = dict(values), values.get("objective", "beta")
    settings = {new: values[old] for old, places in LEGACY_SETTINGS.items() if old in values
                for owner, new in places if owner == objective}
    if objective == "dipvae" and values.get("dip_offdiagonal"):
        settings["lambda_d_factor"] = values.get("dip_diagonal", 100.0) / values["dip_offdiagonal"]
    kept = {key: value for key, value in values.items() if key not in LEGACY_SETTINGS}
    return from_dict({**kept, objective: settings})


BOOLEANS = {"1": True, "true": True, "yes": True, "on": True, "0": False, "false": False, "no": False, "off": False}


def coerce(name: str, hint: Any, value: Any, typed: bool = False) -> Any:
    """Turn a value (often a string from the command line) into the field's type, or say what was expected. A
    TOML or JSON value of another type (a boolean for a number, a number for a list; with `typed`, a string for
    anything but text) is refused, not converted."""
    try:
        if value is None:
            return None
        if typed and isinstance(value, str) and hint not in (str, str | None):
            raise TypeError
        if hint is bool:
            return value if isinstance(value, bool) else BOOLEANS[value.strip().lower()]
        if isinstance(value, bool):
            raise TypeError
        if typing.get_origin(hint) is tuple:
            items = (value.split(",") if value.strip() else []) if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                raise TypeError
            return tuple(_integer(x) for x in items)  # an empty item ("16,,16") is refused, not dropped
        if hint is int:
            return _integer(value)
        if hint is float:
            if not isinstance(value, (int, float, str)):
                raise TypeError
            return float(value)
        if not isinstance(value, str):
            raise TypeError
        return value
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError):
        what = {bool: "boolean (true or false)", int: "integer", float: "number", str: "string"}.get(hint, "list of integers")
        raise BetaVAEError(f"{name} got {value!r}, which is not a valid {what}; fix --{name.replace('_', '-')}") from None


def _integer(value: Any) -> int:
    """An int from an int, an integral float or a string of one; anything else (a bool, 1.5, "x") is refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise TypeError
    if isinstance(value, int):
        return value
    number = float(value)
    if not number.is_integer():
        raise ValueError
    return int(value) if isinstance(value, str) and value.strip().lstrip("+-").isdigit() else int(number)


MAX_CONFIG_BYTES = 1 << 20  # a configuration file is a few lines; this bounds what is read from /dev/zero and the like


def load_file(path: str | Path, base: Config | None = None) -> Config:
    """Read a TOML config file (flat keys, or a [train] table) on top of a base configuration."""
    path = Path(path)
    if path.exists() and not path.is_file():  # a folder, a FIFO or a device: never a configuration, and may block
        raise BetaVAEError(f"config file {path} is not a regular file; give the path of a TOML file")
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_CONFIG_BYTES + 1)
        if len(raw) > MAX_CONFIG_BYTES:
            raise BetaVAEError(f"config file {path} is over {MAX_CONFIG_BYTES >> 20} MB, which no configuration is; "
                               "give the path of a TOML file")
        data = tomllib.loads(raw.decode("utf-8-sig"))  # a byte-order mark, as some editors save, is not content
    except FileNotFoundError:
        raise BetaVAEError(f"config file {path} does not exist; check the path") from None
    except OSError as error:
        raise BetaVAEError(f"config file {path} cannot be read ({error.strerror}); give the path of a TOML file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
        raise BetaVAEError(f"config file {path} is not valid TOML ({error}); fix the file") from None
    except RecursionError:
        raise BetaVAEError(f"config file {path} nests arrays or tables too deeply for a configuration; fix the "
                           "file") from None
    data = data.get("train", data)
    if not isinstance(data, dict):
        raise BetaVAEError(f"config file {path}: [train] must be a table of configuration keys")
    try:
        return from_dict(data, base, typed=True)
    except BetaVAEError as error:  # its advice names the command-line flag; here the value is in the file
        raise BetaVAEError(f"config file {path}: {str(error).split('; fix --')[0]}; fix the file") from None


def resolve(preset_name: str | None = None, config_file: str | Path | None = None,
            overrides: dict[str, Any] | None = None) -> Config:
    """Preset, then config file, then overrides: each later source wins."""
    config = preset(preset_name or DEFAULT_PRESET)
    chosen = (overrides or {}).get("objective")
    if config_file:  # an objective chosen by an option is the one the file's [objective] table is read for
        config = load_file(config_file, config.replace(objective=chosen) if chosen else config)
    if overrides:
        config = from_dict(overrides, config)
    return config
