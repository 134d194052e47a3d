"""Setting a run up and training it: the configuration (new, or saved and resumed), the folder (locked, checked,
replaced on request), the data, the processes of a torchrun job, then the trainer. Resume changes are decided here and
nowhere else."""

from __future__ import annotations

import gc
from contextlib import ExitStack, contextmanager, suppress
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch

from .. import data as datalib
from ..config import Config, from_dict
from ..errors import BetaVAEError, first_line
from . import checkpoint, distributed, folder
from .callbacks import Callback
from .lock import LOCK, run_lock
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted

RESUMABLE_CHANGES = ("epochs", "lr", "device", "threads", "precision", "cuda_graphs")


def fit(config: Config | Mapping[str, Any] | None, run_dir: str | Path, *, resume: bool = False,
        overwrite: bool = False, from_best: bool = False, data_changed_ok: bool = False,
        data: datalib.Data | None = None, callbacks: Iterable[Callback] = (), progress: bool | None = None,
        log: Callable[[str], None] | None = None, figures: bool = True) -> Path:
    """Train `config` into run_dir (a new run; overwrite=True replaces one already there), or with resume=True continue
    the run there from its latest checkpoint (from_best=True: from its best), its saved configuration changed by
    `config`'s resumable fields; returns the run folder. Only the callbacks given watch it. While it trains, the
    folder is locked against any other writer. `figures` records whether the callbacks draw figures, so that a
    resume draws them or not as the run did."""
    run_dir = Path(run_dir)
    if resume:
        config = resumed_config(run_dir, config)
    elif not isinstance(config, Config):
        raise TypeError("a new run needs a Config (betavae.train resolves presets and overrides into one)")
    if config.threads:
        torch.set_num_threads(config.threads)
    device = distributed.device_for(config.device)
    context = distributed.from_environment(device)
    device = distributed.device_for(config.device, context.local_rank)  # this process's GPU under torchrun
    trainer = None
    try:
        with ExitStack() as held:
            with refusals_shared(context, device):  # a refusal on rank 0 stops every rank, not only rank 0
                if context.is_main:
                    held.enter_context(run_lock(run_dir, create=not resume))
                    remove_stale_temporaries(run_dir)
                    if not resume:
                        check_new_folder(run_dir, overwrite)
            state = resume_state(run_dir, from_best) if resume else None
            data = data or load_data(config, context)
            trainer = Trainer(config, run_dir, data, callbacks, progress, log, context)  # may refuse the model
            with refusals_shared(context, device):
                if context.is_main:
                    prepare_folder(run_dir, config, data, resume, overwrite, data_changed_ok, figures)
            if state is not None:
                checkpoint.restore(trainer, state, folder.BEST_CHECKPOINT if from_best else folder.CHECKPOINT)
            with failures_recorded(run_dir, trainer, context.is_main):
                trainer.run()
            context.barrier()  # every rank done before any tears down
    finally:
        if context.distributed:
            del trainer  # DDP's reducer must go before its process group, or the interpreter aborts at exit
            gc.collect()
            distributed.shutdown()
    return run_dir


def load_data(config: Config, context: distributed.Context) -> datalib.Data:
    """The run's data; under torchrun rank 0 fetches (and caches) it before the other ranks read the cache."""
    if not context.is_main:
        context.barrier()
    data = datalib.load(config.dataset, config.data_dir, config.val_size)
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


def prepare_folder(run_dir: Path, config: Config, data: datalib.Data, resume: bool, overwrite: bool,
                   data_changed_ok: bool, figures: bool = True) -> None:
    """Check a resumed run's data, empty an overwritten run's folder (only now that the new run is known to start),
    then write config.json."""
    fingerprint = datalib.fingerprint(data)
    if resume:
        check_image_shape(run_dir, config, data.image_shape)
        check_data(run_dir, config, fingerprint, data_changed_ok)
    elif overwrite:
        folder.remove_run_files(run_dir)
    splits = {name: datalib.split_fingerprint(data.split(name)) for name in ("train", "val", "test")}
    folder.save_config(run_dir, config, data.image_shape, fingerprint, figures, splits)


@contextmanager
def failures_recorded(run_dir: Path, trainer: Trainer, main: bool) -> Iterator[None]:
    """Training that stops on an error leaves status "failed" with the reason; a full disk or another OS error
    becomes one line that says how to continue."""
    try:
        yield
    except (TrainingInterrupted, TrainingDiverged):
        raise  # these wrote their own status
    except KeyboardInterrupt:  # a second Ctrl-C: stopped at once, without a checkpoint of the epoch in progress
        if main:
            with suppress(OSError):
                folder.write_status(run_dir, "interrupted", trainer.epoch, trainer.config.epochs,
                                    "stopped at once by a second Ctrl-C; resume continues from the last epoch")
        raise
    except Exception as error:
        reason = f"{type(error).__name__}: {first_line(error, 300)}"
        if main:
            with suppress(OSError):  # the disk may still be full
                folder.write_status(run_dir, "failed", trainer.epoch, trainer.config.epochs, reason)
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


def resume_state(run_dir: Path, from_best: bool) -> dict[str, Any] | None:
    """The checkpoint to continue from; None (start at step 0 with the saved configuration) when the run stopped
    before its first checkpoint."""
    if from_best:
        if not (run_dir / folder.BEST_CHECKPOINT).is_file():
            raise BetaVAEError(f"{run_dir} has no best checkpoint yet (it is kept from epoch 1 on); resume without "
                               "--from-best")
        return folder.load_checkpoint(run_dir, folder.BEST_CHECKPOINT)
    if not (run_dir / folder.CHECKPOINT).is_file():
        check_never_trained(run_dir)
        return None
    return folder.load_checkpoint(run_dir)


def check_never_trained(run_dir: Path) -> None:
    """Without a checkpoint only a run that never finished an epoch starts again from step 0: a trained one would be
    trained anew over its own weights, metrics and best checkpoint."""
    trained = folder.trained_epochs(folder.read_status(run_dir), folder.read_metrics(run_dir))
    if trained < 1:
        return
    fix = (f"continue from its best epoch with: betavae train --resume {run_dir} --from-best"
           if (run_dir / folder.BEST_CHECKPOINT).is_file() else "train a new run")
    raise BetaVAEError(f"{run_dir} has trained {trained} epoch(s) but its {folder.CHECKPOINT} is missing, so it cannot "
                       f"continue where it stopped; restore {folder.CHECKPOINT} from a backup, or {fix}")


def check_image_shape(run_dir: Path, config: Config, image_shape: tuple[int, ...]) -> None:
    """On resume, refuse images of another size or channel count: the model cannot take them (not even with
    --data-changed-ok)."""
    _, saved = folder.read_config_file(run_dir)
    if tuple(saved) != tuple(image_shape):
        shape = lambda s: "x".join(str(n) for n in s)  # noqa: E731
        raise BetaVAEError(f"the images of {config.dataset} are now {shape(image_shape)}, but {run_dir} was trained on "
                           f"{shape(saved)}; a model cannot change its image size: restore the data, or train a new run")


def check_data(run_dir: Path, config: Config, fingerprint: str, changed_ok: bool) -> None:
    """On resume, refuse data that differ from what the run was trained on (unless told they may)."""
    saved = folder.read_fingerprint(run_dir)
    if saved and saved != fingerprint and not changed_ok:
        raise BetaVAEError(f"the data of {run_dir} ({config.dataset}) changed since the run started; restore them, or "
                           "continue on the new data with --data-changed-ok")


def resumed_config(run_dir: Path, changes: Config | Mapping[str, Any] | None = None) -> Config:
    """The saved configuration with the requested changes (a Config, or only the fields to change), refusing any
    change but those a resume allows."""
    saved, _ = folder.read_config_file(run_dir)
    if not changes:
        return saved
    requested = changes if isinstance(changes, Config) else from_dict(dict(changes), saved)
    changed = {k for k, v in requested.to_dict().items() if saved.to_dict()[k] != v}
    refused = sorted(changed - set(RESUMABLE_CHANGES))
    if refused:
        raise BetaVAEError(f"cannot change {', '.join(refused)} when resuming {run_dir}; only "
                           f"{', '.join(RESUMABLE_CHANGES)} may change. Start a new run instead")
    status = folder.read_status(run_dir)
    done = status["epoch"]
    if requested.epochs < done:
        raise BetaVAEError(f"{run_dir} has trained {done} epochs already; --epochs must be at least {done}")
    if status["state"] == "finished" and requested.epochs == done and changed:
        raise BetaVAEError(f"{run_dir} has finished its {done} epochs, so changing {', '.join(sorted(changed))} would "
                           f"train nothing; add --epochs {done + 10} (say) to train further")
    return saved.replace(**{k: getattr(requested, k) for k in changed})
