"""Setting a run up and training it: the start (a new run, or a resumed one: resuming.py decides what a resume may
change and continues from), the folder (locked, checked, replaced on request), the data, the processes of a torchrun
job, then the trainer."""

from __future__ import annotations

import gc
import sys
import uuid
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch

from .. import data as datalib
from ..config import Config
from ..errors import BetaVAEError, first_line
from ..model import networks
from . import distributed, folder
from .callbacks import Callback
from .lock import LOCK, run_lock
from .resuming import Resumed
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted


def fit(config: Config, run_dir: str | Path, *, overwrite: bool = False, data: datalib.Data | None = None,
        callbacks: Iterable[Callback] = (), progress: bool | None = None, log: Callable[[str], None] | None = None,
        figures: bool = True) -> Path:
    """Train a new run of `config` into run_dir (overwrite=True replaces the run already there, and only its files);
    returns the run folder. Only the callbacks given watch it; `figures` records whether they draw figures, so that a
    resume draws them or not as the run did. While it trains, the folder is locked against any other writer."""
    return train(Path(run_dir), NewRun(config, overwrite, figures), data, callbacks, progress, log)


def resume(run_dir: str | Path, changes: Mapping[str, Any] | None = None, *, meta: folder.RunMeta | None = None,
           from_best: bool = False, data_changed_ok: bool = False, figures: bool | None = None,
           data: datalib.Data | None = None, callbacks: Iterable[Callback] = (), progress: bool | None = None,
           log: Callable[[str], None] | None = None) -> Path:
    """Continue the run in run_dir from its latest checkpoint (from_best=True: its best), its saved configuration
    changed by `changes` (field: value; only resumable fields may differ from the saved ones; see resuming.py);
    returns the run folder. `meta` is the run's metadata when the caller read it already; figures=None records that
    the callbacks draw figures as the run did before."""
    run_dir = Path(run_dir)
    start = Resumed(run_dir, changes or {}, meta, from_best, data_changed_ok, figures)
    return train(run_dir, start, data, callbacks, progress, log)


class NewRun:
    """A new run: into an empty folder (made if missing), or replacing the run there when told to."""

    creates_folder = True

    def __init__(self, config: Config, overwrite: bool = False, figures: bool = True):
        if not isinstance(config, Config):
            raise TypeError("a new run needs a Config (betavae.train resolves presets and overrides into one)")
        self.config, self.overwrite, self.figures = config, overwrite, figures
        self.run_id, self.note = uuid.uuid4().hex, ""

    def check_folder(self, run_dir: Path) -> None:
        check_new_folder(run_dir, self.overwrite)

    def load(self, run_dir: Path) -> None:
        """Nothing to continue from."""

    def restore(self, trainer: Trainer) -> None:
        """Nothing to restore: training starts at step 0."""

    def write(self, run_dir: Path, data: datalib.Data, trainer: Trainer) -> None:
        """Remove the run being replaced (only now that the new one is known to start), then write config.json."""
        if self.overwrite:
            folder.remove_run_files(run_dir)
        splits = {name: datalib.split_fingerprint(data.split(name)) for name in ("train", "val", "test")}
        folder.write_meta(run_dir, folder.RunMeta(self.config, data.image_shape, datalib.fingerprint(data), splits,
                                                  self.figures, (list(sys.argv),), self.run_id))


def train(run_dir: Path, start: NewRun | Resumed, data: datalib.Data | None, callbacks: Iterable[Callback],
          progress: bool | None, log: Callable[[str], None] | None) -> Path:
    """Lock the folder, check it, read what the run continues from, build the trainer, write config.json (every
    refusal comes before this write), then train. Under torchrun only rank 0 locks and writes, and a refusal on it
    stops every rank."""
    if start.config.threads:
        torch.set_num_threads(start.config.threads)
    device = distributed.device_for(start.config.device)
    context = distributed.from_environment(device)
    device = distributed.device_for(start.config.device, context.local_rank)  # this process's GPU under torchrun
    trainer = None
    try:
        with ExitStack() as held:
            with refusals_shared(context, device):  # a refusal on rank 0 stops every rank, not only rank 0
                if context.is_main:
                    held.enter_context(run_lock(run_dir, create=start.creates_folder))
                    remove_stale_temporaries(run_dir)
                    start.check_folder(run_dir)
                    folder.check_places(run_dir)
            start.load(run_dir)
            data = data or load_data(start.config, context)
            if isinstance(start, NewRun):
                start.config = resolved_model(start.config, data.image_shape)
            trainer = Trainer(start.config, run_dir, data, callbacks, progress, log, context)  # may refuse the model
            trainer.run_id = start.run_id
            start.restore(trainer)
            with refusals_shared(context, device):
                if context.is_main:
                    start.write(run_dir, data, trainer)
            if start.note:
                trainer.log(start.note)
            with failures_recorded(run_dir, trainer, context.is_main):
                trainer.run()
            context.barrier()  # every rank done before any tears down
    finally:
        if context.distributed:
            del trainer  # DDP's reducer must go before its process group, or the interpreter aborts at exit
            gc.collect()
            distributed.shutdown()
    return run_dir


def resolved_model(config: Config, image_shape: tuple[int, int, int]) -> Config:
    """The config with the conv model's convolutions written out when the size rule chose them, so that config.json
    says which model was built and a later change of the rule cannot change this run's."""
    if config.arch != "conv" or config.channels:
        return config
    return config.replace(channels=networks.conv_channels(image_shape))


def load_data(config: Config, context: distributed.Context) -> datalib.Data:
    """The run's data; under torchrun rank 0 fetches (and caches) it before the other ranks read the cache."""
    if not context.is_main:
        context.barrier()
    data = datalib.load(config.dataset, config.data_dir, config.val_size, config.image_size)
    if context.is_main:
        context.barrier()
    return data


@contextmanager
def refusals_shared(context: distributed.Context, device: torch.device) -> Iterator[None]:
    """Run a rank-0-only step; when it refuses, every rank of the job stops too (instead of waiting at a barrier)."""
    refusal = None
    try:
        yield
    except BetaVAEError as error:
        refusal = error
    if context.any(refusal is not None, device):
        raise refusal or BetaVAEError("rank 0 refused to train this run; see its message")


@contextmanager
def failures_recorded(run_dir: Path, trainer: Trainer, main: bool) -> Iterator[None]:
    """Training that stops on an error leaves status "failed" with the reason and the last epoch whose checkpoint was
    written (so the advised resume accepts the files); a full disk or another OS error becomes one line that says how
    to continue."""
    try:
        yield
    except (TrainingInterrupted, TrainingDiverged):
        raise  # these wrote their own status
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, without a checkpoint of the epoch in progress
        if main:
            with suppress(OSError):
                folder.write_status(run_dir, "interrupted", trainer.saved_epoch, trainer.config.epochs,
                                    "stopped at once by a second Ctrl-C; resume continues from the last epoch")
        raise
    except Exception as error:
        reason = f"{type(error).__name__}: {first_line(error, 300)}"
        if main:
            with suppress(OSError):  # the disk may still be full
                folder.write_status(run_dir, "failed", trainer.saved_epoch, trainer.config.epochs, reason)
        if isinstance(error, OSError):
            raise BetaVAEError(f"training {run_dir} stopped: {reason}; fix that (free disk space, say) and continue "
                               f"with: betavae train --resume {run_dir}") from None
        raise


def remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files of the run's own atomic writes that a killed process left behind (the lock holder is the only
    process that writes the trainer's files; figure commands, which do not lock, write other names)."""
    for entry in run_dir.iterdir():
        if folder.is_temporary(entry.name) and entry.is_file():
            entry.unlink(missing_ok=True)


def check_new_folder(run_dir: Path, overwrite: bool) -> None:
    """A new run goes into an empty folder, or replaces the run there when told to; a folder holding anything else
    (a user's files, a run's files without its config.json) is never written into."""
    holds_run = (run_dir / folder.CONFIG).is_file()
    if holds_run and not overwrite:
        raise BetaVAEError(f"{run_dir} already holds a run; continue it with: betavae train --resume {run_dir} "
                           "(or replace it with --overwrite, or choose another --name)")
    others = sorted(entry.name for entry in run_dir.iterdir() if entry.name != LOCK)
    if others and not holds_run:
        shown = ", ".join(others[:3]) + (", ..." if len(others) > 3 else "")
        raise BetaVAEError(f"{run_dir} holds files but no betavae run (no {folder.CONFIG}; it holds {shown}); a new "
                           "run goes into an empty folder only (--overwrite replaces runs only): choose another "
                           "--name")
