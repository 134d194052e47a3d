"""The run folder's files, written by training and read by `betavae.runs.Run`: one module owns their format.

    runs/<name>/config.json         resolved configuration, the objective's settings, image shape, versions
    runs/<name>/model.safetensors   the latest weights (no code, safe to share)
    runs/<name>/checkpoint.pt       everything to resume exactly (tensors only; read with weights_only=True)
    runs/<name>/best-checkpoint.pt  the same, of the epoch with the lowest held-out negative ELBO so far
    runs/<name>/metrics.jsonl|csv   one record per epoch (epoch 0 = the untrained model)
    runs/<name>/status.json         running, interrupted, failed or finished, and the last completed epoch

and, written by the figures, the report and the commands that read a run: figures/, report.html, latents.npz,
samplers/, evaluation.json, disentanglement.json, tensorboard/. RUN_FILES names every file, and OWN_FILES every name
betavae writes inside figures/, samplers/ and tensorboard/: replacing a run (--overwrite) removes those (and a folder
left empty) and nothing else a user put in the folder.

config.json and each metrics record carry `format`, the version of their layout: a reader knows what it holds and
refuses, in one line, a folder written by a newer betavae; folders written before the field existed are format 0.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch

from .. import atomic
from ..config import Config, from_saved
from ..errors import BetaVAEError, first_line
from ..version import __version__
from .records import check_record

CONFIG, WEIGHTS, CHECKPOINT, BEST_CHECKPOINT = "config.json", "model.safetensors", "checkpoint.pt", "best-checkpoint.pt"
METRICS_JSONL, METRICS_CSV, STATUS = "metrics.jsonl", "metrics.csv", "status.json"
REPORT, EVALUATION, DISENTANGLEMENT, LATENTS = "report.html", "evaluation.json", "disentanglement.json", "latents.npz"
FIGURES, SAMPLERS, TENSORBOARD = "figures", "samplers", "tensorboard"
UDR = "udr.json"
RUN_FILES = (CONFIG, WEIGHTS, CHECKPOINT, BEST_CHECKPOINT, METRICS_JSONL, METRICS_CSV, STATUS, REPORT, EVALUATION,
             DISENTANGLEMENT, LATENTS, UDR)
RUN_FOLDERS = (FIGURES, SAMPLERS, TENSORBOARD)
OWN_FILES = re.compile("|".join((  # paths under RUN_FOLDERS that betavae writes (pictures/, samplers/, tensorboard.py)
    r"figures/(reconstructions|samples)/epoch_\d{3,7}\.png",  # epochs 000 to 1,000,000
    r"figures/(reconstructions|samples|traversal)\.gif",
    r"figures/(reconstruction|interpolation(_linear|_spherical)?|traversal|curves|mutual_information"
    r"|traversal_factors)\.png",
    r"figures/latent_map_(pca|tsne|umap)\.png",
    r"figures/samples(_(gmm|class)(_\d{1,6})?)?(_drawn)?\.png",  # `betavae sample`: its fitted samplers, a label
    r"samplers/[a-z]+-(default|\d+)-(full|diag|tied|spherical)\.safetensors",
    r"tensorboard/events\.out\.tfevents\.[^/]+",
)))
FORMAT = 2  # the layout of config.json and of metrics records; 0 = written before the field existed, 1 = flat
# objective settings


@dataclass(frozen=True)
class RunMeta:
    """What config.json says about a run, read once per Run and per training call and passed down: the resolved
    configuration, the image shape, the data's fingerprint (and each split's), whether training draws figures (a
    resume keeps doing as the run did), every command that trained the run, and the run's identity (kept in each of
    its checkpoints; "" for runs from before it existed)."""

    config: Config
    image_shape: tuple[int, int, int]
    data_fingerprint: str = ""
    split_fingerprints: Mapping[str, str] = field(default_factory=dict)
    figures: bool = True
    commands: tuple[list[str], ...] = ()
    run_id: str = ""


def write_meta(run_dir: Path, meta: RunMeta) -> None:
    """Write config.json: the run's metadata, what the objective reads, and the versions that wrote it, with a digest
    of all of it (an edit by hand, a β changed say, would otherwise be believed by every reader and by a resume)."""
    content = {
        "format": FORMAT,
        "config": meta.config.to_dict(),
        "objective": {"name": meta.config.objective, **meta.config.settings,
                      "loss": meta.config.build_objective().describe()},
        "image_shape": list(meta.image_shape),
        "data_fingerprint": meta.data_fingerprint,
        "split_fingerprints": dict(meta.split_fingerprints),
        "figures": meta.figures,
        "versions": {"betavae": __version__, "torch": torch.__version__, "python": platform.python_version()},
        "commands": list(meta.commands),
        "run_id": meta.run_id,
    }
    atomic.write_json(run_dir / CONFIG, {**content, "sha256": content_digest(content)})


def content_digest(content: dict[str, Any]) -> str:
    """sha256 of config.json's content as JSON with sorted keys: the same after a round trip through the file."""
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def check_digest(saved: dict[str, Any], path: Path) -> None:
    """Refuse a config.json changed after betavae wrote it (files from before the digest existed carry none)."""
    digest = saved.pop("sha256", None)
    if digest is not None and digest != content_digest(saved):
        raise BetaVAEError(f"{path} was changed after betavae wrote it (its sha256 does not match); restore it from a "
                           f"backup. What a resume may change is changed with: betavae train --resume {path.parent} "
                           "--epochs N (or --lr, --time-budget)")


def read_meta(run_dir: str | Path) -> RunMeta:
    """The run's metadata from its config.json (the one reader of that file), or one line naming what is wrong."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise BetaVAEError(f"{run_dir} is a file, not a run folder; give the run's folder (runs live under "
                           "runs/<name>)")
    if not run_dir.is_dir():
        raise BetaVAEError(f"run folder {run_dir} does not exist; check the path (runs live under runs/<name>)")
    check_regular_files(run_dir)
    path = run_dir / CONFIG
    try:
        saved = json.loads(path.read_text())
        check_format(saved.get("format", 0), path)
        meta = RunMeta(_saved_config(saved, path), _image_shape(saved["image_shape"]),
                       _typed(saved, "data_fingerprint", str, ""), _fingerprints(saved.get("split_fingerprints", {})),
                       _typed(saved, "figures", bool, True), _commands(saved), _typed(saved, "run_id", str, ""))
        check_digest(saved, path)  # last: a damaged file is named by what is wrong in it
        return meta
    except FileNotFoundError:
        raise BetaVAEError(f"{run_dir} is not a betavae run (no {CONFIG}); point at a folder made by betavae train") from None
    except (json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError, UnicodeDecodeError) as error:
        raise BetaVAEError(f"{path} is corrupt ({first_line(error, 120)}); restore it or train again") from None
    except OSError as error:
        raise BetaVAEError(f"{path} cannot be read ({error.strerror}); check the run folder") from None


def check_regular_files(run_dir: Path) -> None:
    """Refuse a run whose files include one that is not a file or a folder (a FIFO, a socket, a device, or a link to
    one): reading it would block forever or never end."""
    for name in RUN_FILES:
        path = run_dir / name
        if path.exists() and not path.is_file() and not path.is_dir():
            raise BetaVAEError(f"{path} is not a regular file (a FIFO, a socket or a device?); remove it, and restore "
                               "the run's own file from a backup")


def _saved_config(saved: dict[str, Any], path: Path) -> Config:
    """The run's settings; a bad value is named as config.json's (the command-line advice of a fresh run's check
    cannot repair a saved run)."""
    try:
        return from_saved(saved["config"], saved.get("format", 0))
    except BetaVAEError as error:
        problem = str(error).split("; ")[0]
        raise BetaVAEError(f"{path} is corrupt ({problem}); restore it from a backup, or correct that value in it") from None


def _typed(saved: dict[str, Any], key: str, kind: type, default: Any) -> Any:
    value = saved.get(key, default)
    if not isinstance(value, kind):
        raise TypeError(f"{key} is not a {kind.__name__}")
    return value


def _image_shape(value: Any) -> tuple[int, int, int]:
    if not (isinstance(value, list) and len(value) == 3 and all(type(n) is int and n > 0 for n in value)):
        raise TypeError("image_shape is not three positive integers")
    return tuple(value)


def _fingerprints(value: Any) -> dict[str, str]:
    if not (isinstance(value, dict) and all(isinstance(v, str) for v in value.values())):
        raise TypeError("split_fingerprints is not a table of fingerprints")
    return value


def _commands(saved: dict[str, Any]) -> tuple[list[str], ...]:
    """Every command that trained the run (runs before the history existed kept their first as "command")."""
    commands = saved.get("commands", [saved["command"]] if "command" in saved else [])
    if not (isinstance(commands, list) and all(isinstance(c, list) for c in commands)):
        raise TypeError("commands is not a list of command lines")
    return tuple(commands)


def check_format(version: Any, path: Path) -> None:
    """Refuse a file written by a newer betavae, whose layout this version cannot know."""
    if not isinstance(version, int) or version > FORMAT:
        raise BetaVAEError(f"{path} has format {version!r}, newer than this betavae reads ({FORMAT}); upgrade betavae")


def check_owner(path: Path, owner: Any, run_id: str) -> None:
    """Refuse a run file that another run wrote (copied in?): it names another run id than the run's config.json.
    Files and runs from before run ids existed name none, and pass."""
    if run_id and owner and owner != run_id:
        others = [p for p in (path.parent / METRICS_JSONL, path.parent / WEIGHTS) if p != path]
        agreeing = next((p.name for p in others if file_owner(p) == owner), None)
        if agreeing:  # two files against config.json: it is the one copied in
            raise BetaVAEError(f"{path.parent / CONFIG} belongs to another run (copied in?): {path.name} and {agreeing} "
                               f"carry run id {str(owner)[:12]}, {CONFIG} {run_id[:12]}; restore this run's own {CONFIG}")
        raise BetaVAEError(f"{path} belongs to another run (its run id is {str(owner)[:12]}, this run's "
                           f"{run_id[:12]}; copied in?); restore this run's own {path.name}, or train a new run")


def file_owner(path: Path) -> str:
    """The run id in metrics.jsonl's first line or in model.safetensors' metadata ("" when none, or unreadable)."""
    if not path.is_file():  # never opened when it is a FIFO
        return ""
    try:
        with open(path, "rb") as stream:
            if path.name != WEIGHTS:
                return str(json.loads(stream.readline()).get("run_id", ""))
            header = json.loads(stream.read(min(int.from_bytes(stream.read(8), "little"), 1 << 20)))
            return str((header.get("__metadata__") or {}).get("run_id", ""))
    except (OSError, ValueError, AttributeError):  # JSON and UTF-8 decoding errors are ValueErrors
        return ""


def save_checkpoint(run_dir: Path, state: dict[str, Any], name: str = CHECKPOINT) -> None:
    buffer = io.BytesIO()
    torch.save(state, buffer)
    atomic.write_bytes(run_dir / name, buffer.getvalue())


def load_checkpoint(run_dir: Path, name: str = CHECKPOINT) -> dict[str, Any]:
    """The resume state, read with weights_only=True so that no code in it can run."""
    path = run_dir / name
    try:
        with warnings.catch_warnings():  # torch warns of a pickle protocol before refusing: the refusal is the line
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise BetaVAEError(f"{run_dir} has no {name} to resume from; start a new run instead") from None
    except Exception as error:  # torch raises many types for corrupt or foreign files
        first = first_line(error, 120)
        if "weights_only" in str(error) or "Weights only" in first:  # never pass on torch's hint to unpickle code
            first = "it holds objects other than tensors, which are never loaded"
        fix = f"train --resume {run_dir} --from-best" if name == CHECKPOINT else f"train --resume {run_dir}"
        raise BetaVAEError(f"{path} is corrupt or not a betavae checkpoint ({first}); restore it from a backup, or "
                           f"continue from the other checkpoint: betavae {fix}") from None


def write_metrics(run_dir: Path, records: list[dict[str, Any]], run_id: str = "") -> None:
    """All epoch records so far, as JSON lines, each naming its run, and as CSV (per-dimension KL as kl_dim_<i>
    columns)."""
    records = [{"format": FORMAT, **r} for r in records]
    lines = [{**r, "run_id": run_id} if run_id else r for r in records]
    atomic.write_text(run_dir / METRICS_JSONL, "".join(json.dumps(r) + "\n" for r in lines))
    rows = [flatten(r) for r in records]
    columns = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(run_dir / METRICS_CSV, out.getvalue())


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """{'val': {'kl_per_dim': [a, b]}} -> {'val_kl_per_dim_0': a, 'val_kl_per_dim_1': b}."""
    flat: dict[str, Any] = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "_"))
        elif isinstance(value, list):
            flat.update({f"{name}_{i}": v for i, v in enumerate(value)})
        else:
            flat[name] = value
    return flat


def read_metrics(run_dir: str | Path, run_id: str = "") -> list[dict[str, Any]]:
    """The epoch records so far (none before the first epoch ends), each checked to be of the run `run_id` (when
    given) and returned without that stamp."""
    path = Path(run_dir) / METRICS_JSONL
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        if not line.strip():
            continue
        try:
            records.append(check_record(json.loads(line), records[-1] if records else None))
        except ValueError as error:  # JSONDecodeError is one
            raise BetaVAEError(f"{path} is damaged at line {number} ({first_line(error, 80)}); restore it from a "
                               f"backup, or write that line again from the same epoch's row of {METRICS_CSV}, which "
                               "holds the same numbers") from None
        check_format(records[-1].get("format", 0), path)
        check_owner(path, records[-1].pop("run_id", ""), run_id)
    return records


def check_metrics_reach(run_dir: Path, records: list[dict[str, Any]], status: dict[str, Any]) -> None:
    """Refuse metrics that stop before the last epoch status.json says was completed (lines lost or cut off): the
    metrics of an epoch are written before its status, so they can run one ahead, never behind."""
    completed = status["epoch"] if type(status.get("epoch")) is int else -1
    last = records[-1]["epoch"] if records else None
    if (last is None and (completed > 0 or status["state"] == "finished")) or (last is not None and last < completed):
        ends = f"ends at epoch {last}" if records else "holds no epoch"
        raise BetaVAEError(f"{Path(run_dir) / METRICS_JSONL} {ends}, but {STATUS} says the run completed epoch "
                           f"{completed}: lines of the first were lost, or the second was edited; restore them from a "
                           f"backup, or write the missing epochs again from their rows of {METRICS_CSV}")


STATES = ("running", "finishing", "finished", "interrupted", "failed")  # what training writes into status.json


def write_status(run_dir: Path, state: str, epoch: int, epochs: int, message: str = "") -> None:
    atomic.write_json(run_dir / STATUS, {"state": state, "epoch": epoch, "epochs": epochs, "message": message})


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def read_status(run_dir: str | Path) -> dict[str, Any]:
    """The run's state and last completed epoch; "unknown" when status.json is missing or unreadable."""
    path = Path(run_dir) / STATUS
    status = _read_json(path)
    if isinstance(status, dict) and status.get("state") in STATES and isinstance(status.get("message", ""), str) and \
            all(type(status.get(key)) is int and status[key] >= 0 for key in ("epoch", "epochs")):
        return {"message": "", **status}
    why = "is damaged (not the JSON betavae writes)" if path.is_file() else "is missing"
    return {"state": "unknown", "epoch": -1, "epochs": -1, "message": f"{path} {why}"}


def trained_epochs(status: dict[str, Any], records: list[dict[str, Any]]) -> int:
    """The last epoch the run completed, by its status or its metrics, whichever says more (0: none trained)."""
    epochs = [status.get("epoch"), *(record.get("epoch") for record in records)]
    return max([0, *(e for e in epochs if isinstance(e, int) and not isinstance(e, bool))])


def is_temporary(name: str) -> bool:
    """Whether a file name is that of an atomic write of one of the run's files (.<name>.<random>.tmp)."""
    return name.endswith(".tmp") and any(name.startswith(f".{file}.") for file in RUN_FILES)


def is_own_file(path: str) -> bool:
    """Whether a path under the run folder ("figures/curves.png") names a file betavae writes there, or the temporary
    of an atomic write of one ("figures/.curves.png.<random>.tmp")."""
    folder_name, _, name = path.rpartition("/")
    temporary = re.fullmatch(r"\.(.+)\.[a-z0-9_]+\.tmp", name)
    if temporary:
        path = f"{folder_name}/{temporary[1]}" if folder_name else temporary[1]
    return path in RUN_FILES or OWN_FILES.fullmatch(path) is not None


def check_places(run_dir: Path) -> None:
    """Refuse, before any training, a folder where the run writes one of its files, or a file or symbolic link where
    it writes one of its folders: the write would fail, or go elsewhere, only after the work."""
    for name in RUN_FILES:
        if (run_dir / name).is_dir():
            raise BetaVAEError(f"{run_dir / name} is a folder where betavae writes a file; move it out of the way and "
                               "run the command again")
    for name in RUN_FOLDERS:
        path = run_dir / name
        if path.is_symlink() or path.exists() and not path.is_dir():
            raise BetaVAEError(f"{path} is a {'symbolic link' if path.is_symlink() else 'file'} where betavae keeps a "
                               "folder of the run's own; move it out of the way and run the command again")
        link = next((p for p in path.rglob("*") if p.is_symlink()), None) if path.is_dir() else None
        if link is not None:  # figures/samples -> the user's photos: the run's pictures would be written through it
            raise BetaVAEError(f"{link} is a symbolic link inside the run's {name}/, where betavae writes; move it out "
                               "of the way and run the command again")


def remove_run_files(run_dir: Path) -> None:
    """Remove what a run wrote into its folder (RUN_FILES, and OWN_FILES in RUN_FOLDERS, with their temporaries) and
    nothing else a user put there: a folder goes only when that leaves it empty. A symbolic link is removed as a
    file, never followed."""
    for entry in run_dir.iterdir():
        if entry.name in RUN_FOLDERS and entry.is_dir() and not entry.is_symlink():
            _remove_own_files(run_dir, entry)
        elif (entry.name in RUN_FILES or entry.name in RUN_FOLDERS or is_temporary(entry.name)) and \
                (entry.is_symlink() or not entry.is_dir()):
            entry.unlink()


def _remove_own_files(run_dir: Path, top: Path) -> None:
    """The files betavae wrote under one of the run's folders, then each folder there left empty, deepest first."""
    for here, folders, files in os.walk(top, topdown=False):  # never into a symbolic link to a folder
        for name in files + [f for f in folders if os.path.islink(os.path.join(here, f))]:
            path = Path(here, name)
            if is_own_file(path.relative_to(run_dir).as_posix()):
                path.unlink()
        try:
            os.rmdir(here)
        except OSError:
            pass  # not empty: a user's files are in it
