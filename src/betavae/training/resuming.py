"""What continuing a run means, decided here and nowhere else: which settings a resume may change, which checkpoint
it continues from (checked to be this run's, and its latest), what more there is to train (more epochs, a time
budget lifted or raised), and the data it may continue on. Every refusal comes before anything is written."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

from .. import data as datalib
from ..config import Config, from_dict
from ..errors import BetaVAEError
from . import checkpoint, folder, weights

RESUMABLE_CHANGES = ("epochs", "lr", "time_budget", "device", "threads", "precision", "cuda_graphs")
Trainer = Any  # a training.trainer.Trainer (fit.py builds it)


class Resumed:
    """A run continued from its latest checkpoint (or its best), its saved configuration changed only as a resume
    may change it."""

    creates_folder = False

    def __init__(self, run_dir: Path, changes: Mapping[str, Any], meta: folder.RunMeta | None = None,
                 from_best: bool = False, data_changed_ok: bool = False, figures: bool | None = None):
        self.meta = meta or folder.read_meta(run_dir)
        self.changes = dict(changes)
        self.config = requested_config(run_dir, self.meta.config, self.changes)
        self.from_best, self.data_changed_ok = from_best, data_changed_ok
        self.figures = self.meta.figures if figures is None else figures
        self.run_id = self.meta.run_id
        self.state: dict[str, Any] | None = None
        self.records: list[dict[str, Any]] = []
        self.note = ""

    @property
    def checkpoint_name(self) -> str:
        return folder.BEST_CHECKPOINT if self.from_best else folder.CHECKPOINT

    def check_folder(self, run_dir: Path) -> None:
        """Nothing to check before the state is read: the folder holds this run."""

    def load(self, run_dir: Path) -> None:
        """Read the state to continue from (checked), then settle what the resume trains."""
        status = folder.read_status(run_dir)
        self.records = folder.read_metrics(run_dir, self.run_id)
        folder.check_metrics_reach(run_dir, self.records, status)
        folder.check_owner(run_dir / folder.WEIGHTS, folder.file_owner(run_dir / folder.WEIGHTS), self.run_id)
        self.state = self.read_state(run_dir, status)
        self.config = self.settle(run_dir, status)

    def read_state(self, run_dir: Path, status: dict[str, Any]) -> dict[str, Any] | None:
        """The checkpoint to continue from; None (step 0 with the saved configuration) only for a run that never
        finished an epoch."""
        if not (run_dir / self.checkpoint_name).is_file():
            if self.from_best and folder.trained_epochs(status, self.records) >= 1:
                raise BetaVAEError(f"{run_dir / folder.BEST_CHECKPOINT} is missing, though the run has trained epochs "
                                   "(deleted?); restore it from a backup, or resume without --from-best")
            if self.from_best:
                raise BetaVAEError(f"{run_dir} has no best checkpoint yet (it is kept from epoch 1 on); resume "
                                   "without --from-best")
            check_never_trained(run_dir, status, self.records)
            return None
        state = folder.load_checkpoint(run_dir, self.checkpoint_name)
        checkpoint.check(state, run_dir / self.checkpoint_name, self.run_id, self.records, status,
                         latest=not self.from_best)
        return state

    def settle(self, run_dir: Path, status: dict[str, Any]) -> Config:
        """The configuration to train: at least the epochs trained; a run stopped by its time budget trains on when
        given more epochs (the spent budget is lifted) or a larger --time-budget; a change that would train nothing
        is refused rather than written."""
        config, state = self.config, self.state or {}
        start, spent = state.get("epoch", 0), state.get("trained_seconds", 0.0)
        if config.epochs < start:
            held = f"its best checkpoint is of epoch {start}" if self.from_best else f"has trained {start} epochs already"
            raise BetaVAEError(f"{run_dir} {held}; --epochs must be at least {start}")
        stopped, budget = bool(state.get("out_of_time")), self.meta.config.time_budget
        given = "time_budget" in self.changes
        if stopped and not given and config.epochs not in (self.meta.config.epochs, start):
            config = config.replace(time_budget=0.0)
            self.note = (f"{run_dir} stopped at its time budget ({budget:g} s); training on to "
                         f"epoch {config.epochs} without one (give --time-budget to keep one)")
        if config.time_budget and (given or not stopped) and spent >= config.time_budget:
            raise BetaVAEError(f"{run_dir} has trained for {spent:.1f} s already, and --time-budget counts all of its "
                               f"training: give more than that (or 0 for no limit)")
        out_of_time = stopped and not given and config.time_budget == budget
        if stopped and not out_of_time:
            self.state = {**state, "out_of_time": False}
        changed = changed_fields(self.meta.config, config)
        if status["state"] == "finished" and (config.epochs <= start or out_of_time) and changed:
            more = f"--epochs {start + 10} (say)" + (f" or a --time-budget above {spent:.0f} s" if stopped else "")
            raise BetaVAEError(f"{run_dir} has finished ({start} epochs{', time budget reached' if stopped else ''}), "
                               f"so changing {', '.join(changed)} would train nothing; add {more} to train further")
        return config

    def restore(self, trainer: Trainer) -> None:
        """Put the checkpoint back into the trainer, once the images are known to fit the run's model."""
        check_image_shape(trainer.run_dir, self.meta, trainer.data.image_shape)
        if self.state is not None:
            latest = self.records[-1]["epoch"] if self.records else 0
            if self.from_best and self.state["epoch"] < latest:  # what a rollback discards, said before it does
                trainer.log(rollback_note(self.state["epoch"], latest, self.config.epochs))
            checkpoint.restore(trainer, self.state, self.records, self.checkpoint_name)

    def write(self, run_dir: Path, data: datalib.Data, trainer: Trainer) -> None:
        """Check the data against the run's, put back weights a user deleted (from a checkpoint taken at an epoch's
        end), then record the resume in config.json: the last step before training."""
        fingerprint = datalib.fingerprint(data)
        check_data(run_dir, self.meta, fingerprint, self.data_changed_ok)
        if self.state is not None and self.state["partial"] is None and not (run_dir / folder.WEIGHTS).is_file():
            weights.save_weights(run_dir, trainer.model, trainer.epoch, trainer.run_id)
        splits = {name: datalib.split_fingerprint(data.split(name)) for name in ("train", "val", "test")}
        folder.write_meta(run_dir, dataclasses.replace(
            self.meta, config=self.config, data_fingerprint=fingerprint, split_fingerprints=splits,
            figures=self.figures, commands=(*self.meta.commands, list(sys.argv))))


def rollback_note(best: int, latest: int, end: int) -> str:
    """What continuing from the best epoch replaces: the epochs after it, trained again up to `end`, and those past
    `end` dropped."""
    def epochs(first: int, last: int) -> str:
        return f"epoch {first}" if first == last else f"epochs {first} to {last}"

    note = f"betavae: continuing from the best checkpoint, epoch {best}: what {epochs(best + 1, latest)} trained is "
    if end >= latest:
        return note + f"replaced, by {epochs(best + 1, end)} trained again"
    trained_again = f"{epochs(best + 1, end)} trained again, and " if end > best else ""
    return note + f"replaced: the run now ends at epoch {end} (--epochs), so {trained_again}{epochs(end + 1, latest)} " \
                  "dropped"


def requested_config(run_dir: Path, saved: Config, changes: Mapping[str, Any]) -> Config:
    """The saved configuration with the requested changes, refusing any change but those a resume allows."""
    requested = as_saved(from_dict(dict(changes), saved), saved) if changes else saved
    check_resumable(run_dir, changed_fields(saved, requested))
    return requested


def as_saved(requested: Config, saved: Config) -> Config:
    """A requested configuration written as a new run records it: a data set path made absolute, and no channels (the
    size rule's choice) as the channels the rule chose for this run."""
    if datalib.registry.is_path(requested.dataset):
        requested = requested.replace(dataset=str(Path(requested.dataset).resolve()))
    if not requested.channels and requested.arch == saved.arch:
        requested = requested.replace(channels=saved.channels)
    return requested


def resumable_options(run_dir: str | Path, options: Mapping[str, Any]) -> dict[str, Any]:
    """Of the options a command line gives with --resume, those a resume changes; the others must equal what the run
    was trained with (the original command, repeated with --resume, continues the run), else one line refuses."""
    requested_config(Path(run_dir), folder.read_meta(run_dir).config, options)  # refuses what may not change
    return {name: value for name, value in options.items() if name in RESUMABLE_CHANGES}


def check_resumable(run_dir: str | Path, names: Iterable[str]) -> None:
    """Refuse a change a resume may not make (the command line refuses the options it is given the same way)."""
    refused = sorted(name for name in names if name not in RESUMABLE_CHANGES)
    if refused:
        raise BetaVAEError(f"cannot change {', '.join(refused)} when resuming {run_dir}; only "
                           f"{', '.join(RESUMABLE_CHANGES)} may change. Start a new run instead (another --name)")


def changed_fields(saved: Config, requested: Config) -> list[str]:
    """The fields and objective settings that differ, by name."""
    before, after = saved.flat(), requested.flat()
    return sorted(name for name in before.keys() | after.keys() if before.get(name) != after.get(name))


def check_never_trained(run_dir: Path, status: dict[str, Any], records: list[dict[str, Any]]) -> None:
    """Without a checkpoint only a run that never finished an epoch starts again from step 0: a trained one would be
    trained anew over its own weights, metrics and best checkpoint."""
    trained = folder.trained_epochs(status, records)
    if trained < 1:
        return
    fix = (f"continue from its best epoch with: betavae train --resume {run_dir} --from-best"
           if (run_dir / folder.BEST_CHECKPOINT).is_file() else "train a new run")
    raise BetaVAEError(f"{run_dir} has trained {trained} epoch(s) but its {folder.CHECKPOINT} is missing, so it cannot "
                       f"continue where it stopped; restore {folder.CHECKPOINT} from a backup, or {fix}")


def check_image_shape(run_dir: Path, meta: folder.RunMeta, image_shape: tuple[int, ...]) -> None:
    """Refuse images of another size or channel count: the model cannot take them (not even with
    --data-changed-ok)."""
    if tuple(meta.image_shape) != tuple(image_shape):
        shape = lambda s: "x".join(str(n) for n in s)  # noqa: E731
        raise BetaVAEError(f"the images of {meta.config.dataset} are now {shape(image_shape)}, but {run_dir} was "
                           f"trained on {shape(meta.image_shape)}; a model cannot change its image size: restore the "
                           "data, or train a new run")


def check_data(run_dir: Path, meta: folder.RunMeta, fingerprint: str, changed_ok: bool) -> None:
    """Refuse data that differ from what the run was trained on (unless told they may)."""
    if meta.data_fingerprint and meta.data_fingerprint != fingerprint and not changed_ok:
        raise BetaVAEError(f"the data of {run_dir} ({meta.config.dataset}) changed since the run started; restore "
                           "them, or continue on the new data with --data-changed-ok")
