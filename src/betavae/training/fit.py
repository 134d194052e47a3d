"""Setting a run up and training it: the configuration (new, or saved and resumed), the folder (locked, checked,
replaced on request), the data, the processes of a torchrun job, then the trainer. Resume changes are decided here and
nowhere else."""

from __future__ import annotations

import gc
import shutil
from contextlib import contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping

import torch

from .. import data as datalib
from ..config import Config, from_dict
from ..errors import BetaVAEError
from . import checkpoint, distributed, folder
from .callbacks import Callback
from .lock import LOCK, run_lock
from .trainer import Trainer, TrainingDiverged, TrainingInterrupted

RESUMABLE_CHANGES = ("epochs", "lr", "device", "threads", "precision", "cuda_graphs")


def fit(config: Config | Mapping[str, Any] | None, run_dir: str | Path, *, resume: bool = False,
        overwrite: bool = False, from_best: bool = False, data_changed_ok: bool = False,
        data: datalib.Data | None = None, callbacks: Iterable[Callback] = (), progress: bool | None = None,
        log: Callable[[str], None] | None = None) -> Path:
    """Train `config` into run_dir (a new run; overwrite=True replaces one already there), or with resume=True continue
    the run there from its latest checkpoint (from_best=True: from its best), its saved configuration changed by
    `config`'s resumable fields; returns the run folder. Only the callbacks given watch it. While it trains, the
    folder is locked against any other writer."""
    run_dir = Path(run_dir)
    config = resumed_config(run_dir, config) if resume else config
    if config.threads:
        torch.set_num_threads(config.threads)
    context = distributed.from_environment(distributed.device_for(config.device))
    trainer = None
    try:
        with run_lock(run_dir) if context.is_main else nullcontext():
            if context.is_main:
                remove_stale_temporaries(run_dir)
                if not resume:
                    prepare_new_folder(run_dir, overwrite)
            state = resume_state(run_dir, from_best) if resume else None
            if data is None:
                if not context.is_main:
                    context.barrier()  # rank 0 fetches (and caches) the data first
                data = datalib.load(config.dataset, config.data_dir, config.val_size)
                if context.is_main:
                    context.barrier()
            trainer = Trainer(config, run_dir, data, callbacks, progress, log, context)  # may refuse the model
            if context.is_main:
                check_data(run_dir, config, data, resume, data_changed_ok)
                folder.save_config(run_dir, config, data.image_shape, datalib.fingerprint(data))
            if state is not None:
                checkpoint.restore(trainer, state)
            with failures_recorded(run_dir, trainer, context.is_main):
                trainer.run()
            context.barrier()  # every rank done before any tears down
    finally:
        if context.distributed:
            del trainer  # DDP's reducer must go before its process group, or the interpreter aborts at exit
            gc.collect()
            distributed.shutdown()
    return run_dir


@contextmanager
def failures_recorded(run_dir: Path, trainer: Trainer, main: bool) -> Iterator[None]:
    """Training that stops on an error leaves status "failed" with the reason; a full disk or another OS error
    becomes one line that says how to continue."""
    try:
        yield
    except (TrainingInterrupted, TrainingDiverged, KeyboardInterrupt):
        raise  # these wrote their own status
    except Exception as error:
        reason = f"{type(error).__name__}: {error}".splitlines()[0][:300]
        if main:
            with suppress(OSError):  # the disk may still be full
                folder.write_status(run_dir, "failed", trainer.epoch, trainer.config.epochs, reason)
        if isinstance(error, OSError):
            raise BetaVAEError(f"training {run_dir} stopped: {reason}; fix that (free disk space, say) and continue "
                               f"with: betavae train --resume {run_dir}") from None
        raise


def remove_stale_temporaries(run_dir: Path) -> None:
    """Temporary files of atomic writes that a killed process left behind (only the lock holder may do this)."""
    for stale in run_dir.rglob(".*.tmp"):
        stale.unlink(missing_ok=True)


def prepare_new_folder(run_dir: Path, overwrite: bool) -> None:
    """Refuse to train a new run over an existing one, or (overwrite=True) empty the folder first."""
    if not (run_dir / folder.CONFIG).exists():
        return
    if not overwrite:
        raise BetaVAEError(f"{run_dir} already holds a run; continue it with: betavae train --resume {run_dir} "
                           "(or replace it with --overwrite, or choose another --name)")
    for entry in run_dir.iterdir():
        if entry.name != LOCK:
            shutil.rmtree(entry) if entry.is_dir() and not entry.is_symlink() else entry.unlink()


def resume_state(run_dir: Path, from_best: bool) -> dict[str, Any] | None:
    """The checkpoint to continue from; None (start at step 0 with the saved configuration) when the run stopped
    before its first checkpoint."""
    if from_best:
        if not (run_dir / folder.BEST_CHECKPOINT).is_file():
            raise BetaVAEError(f"{run_dir} has no best checkpoint yet (it is kept from epoch 1 on); resume without "
                               "--from-best")
        return folder.load_checkpoint(run_dir, folder.BEST_CHECKPOINT)
    if not (run_dir / folder.CHECKPOINT).is_file():
        return None
    return folder.load_checkpoint(run_dir)


def check_data(run_dir: Path, config: Config, data: datalib.Data, resume: bool, changed_ok: bool) -> None:
    """On resume, refuse data that differ from what the run was trained on (unless told they may)."""
    if not resume:
        return
    saved = folder.read_fingerprint(run_dir)
    if saved and saved != datalib.fingerprint(data) and not changed_ok:
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
    done = folder.read_status(run_dir)["epoch"]
    if requested.epochs < done:
        raise BetaVAEError(f"{run_dir} has trained {done} epochs already; --epochs must be at least {done}")
    return saved.replace(**{k: getattr(requested, k) for k in changed})
