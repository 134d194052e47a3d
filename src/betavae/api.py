"""What a user does, composed from the stages, for the command line and a notebook alike.

`train` is the one entry point for training: with no configuration it trains the default preset exactly as
`betavae train` does, names the run the same way, and installs the same callbacks (per-epoch figures, the report,
TensorBoard when installed). `disentangle` scores a dSprites run, draws its figures and refreshes its report.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping

from . import data as datalib
from .config import DEFAULT_PRESET, Config, resolve
from .errors import BetaVAEError
from .evaluation import factors
from .pictures import run_figures
from .pictures.report import REPORT, write_report
from .runs import Run
from .training import Callback, fit, folder, tensorboard


def run_name(preset: str | None, config: Config) -> str:
    """<preset>-<dataset>-<time>: the default name of a new run (user data sets are called "data")."""
    dataset = config.dataset if config.dataset in datalib.registry.KNOWN else "data"
    return f"{preset or DEFAULT_PRESET}-{dataset}-{time.strftime('%Y%m%d-%H%M%S')}"


def default_callbacks(figures: bool = True, report: bool = True, tensorboard_log: bool | None = None
                      ) -> list[Callback]:
    """What watches a run unless told otherwise: TensorBoard when installed, the figures, and the report."""
    callbacks: list[Callback] = []
    if tensorboard_log or (tensorboard_log is None and tensorboard.available()):
        callbacks.append(tensorboard.TensorBoardLog())
    if figures:
        callbacks.append(run_figures.TrainingFigures(report=report))
    return callbacks


def train(config: Config | None = None, run_dir: str | Path | None = None, *, preset: str | None = None,
          resume: bool = False, changes: Mapping[str, Any] | Config | None = None, name: str | None = None,
          runs: str | Path = "runs", overwrite: bool = False, from_best: bool = False, data_changed_ok: bool = False,
          data: datalib.Data | None = None, figures: bool | None = None, report: bool = True,
          tensorboard_log: bool | None = None, callbacks: Iterable[Callback] = (), progress: bool | None = None,
          log: Callable[[str], None] | None = None) -> Path:
    """Train a new run, or continue one, and return its folder.

    New run: `config` (default: the `preset`, itself by default the betavae preset) into `run_dir` (default
    runs/<name>, the name by default <preset>-<dataset>-<time>; overwrite=True replaces a run already there).
    Resume (resume=True): the run at `run_dir` from its latest checkpoint (from_best=True: its best), with `changes`
    (or `config`) changing only what a resume may change (epochs, lr, device, threads, precision, cuda_graphs).
    Figures, the report and TensorBoard watch unless turned off (figures=None: a new run draws figures, a resumed one
    does as it did before); `callbacks` are added to them.
    """
    if figures is None:
        figures = folder.read_meta(run_dir).figures if resume and run_dir is not None else True
    watchers = [*default_callbacks(figures, report, tensorboard_log), *callbacks]
    options = dict(data=data, callbacks=watchers, progress=progress, log=log, figures=figures)
    if resume:
        if run_dir is None:
            raise BetaVAEError("resuming needs the folder of the run to continue")
        return fit(changes or config, run_dir, resume=True, from_best=from_best, data_changed_ok=data_changed_ok,
                   **options)
    if changes:
        raise BetaVAEError("changes apply to resume=True only; give a new run its whole configuration instead")
    config = config or resolve(preset)
    if datalib.registry.is_path(config.dataset):  # so that the run opens from any folder
        config = config.replace(dataset=str(Path(config.dataset).resolve()))
    if run_dir is None:
        run_dir = Path(runs) / (check_run_name(name, runs) if name is not None else run_name(preset, config))
    return fit(config, run_dir, overwrite=overwrite, **options)


def check_run_name(name: str, runs: str | Path) -> str:
    """A run name is one folder name inside the runs folder: no separators, not "." or "..", not absolute."""
    if not name or name != name.strip() or name.startswith(".") or any(c in name for c in "/\\\0"):
        raise BetaVAEError(f"run name {name!r} must be a single folder name (no '/', no leading dot or space, not "
                           f"empty); runs are made inside --runs ({runs}), which says where")
    return name


def disentangle(run: Run | str | Path, seed: int = 0, data_dir: str | None = None,
                sizes: dict[str, dict[str, Any]] | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The five disentanglement metrics of a finished run on a data set with ground-truth factors
    (RUN/disentanglement.json), its two factor figures, and its report refreshed with both when it has one."""
    run = run if isinstance(run, Run) else Run.open(run)
    result = factors.evaluate_run(run, seed, data_dir, sizes, **({"log": log} if log else {}))
    run_figures.save_factor_figures(run, result)
    if (run.path / REPORT).is_file():
        write_report(run)  # the figures and the validation split only: the grid is not loaded again
    return result
