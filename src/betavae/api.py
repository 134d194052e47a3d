"""What a user does, composed from the stages, for the command line and a notebook alike.

`train` trains a new run: with no configuration it trains the default preset exactly as `betavae train` does, names
the run the same way, and installs the same callbacks (per-epoch figures, the report, TensorBoard when installed).
`resume` continues a run, with only the settings a resume may change. `disentangle` scores a dSprites run, draws its
figures and refreshes its report; `select` ranks runs trained alike by UDR and refreshes their reports.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable, Iterable

from . import data as datalib
from . import training
from .config import DEFAULT_PRESET, Config, resolve
from .errors import BetaVAEError
from .evaluation import factors, udr
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
          name: str | None = None, runs: str | Path = "runs", overwrite: bool = False, data: datalib.Data | None = None,
          figures: bool = True, report: bool = True, tensorboard_log: bool | None = None,
          callbacks: Iterable[Callback] = (), progress: bool | None = None,
          log: Callable[[str], None] | None = None) -> Path:
    """Train a new run and return its folder: `config` (default: the `preset`, itself by default the betavae preset)
    into `run_dir` (default runs/<name>, the name by default <preset>-<dataset>-<time>; overwrite=True replaces a run
    already there). Figures, the report and TensorBoard watch unless turned off; `callbacks` are added to them."""
    config = config or resolve(preset)
    if datalib.registry.is_path(config.dataset):  # so that the run opens from any folder
        config = config.replace(dataset=str(Path(config.dataset).resolve()))
    if run_dir is None:
        run_dir = Path(runs) / (check_run_name(name, runs) if name is not None else run_name(preset, config))
    watchers = [*default_callbacks(figures, report, tensorboard_log), *callbacks]
    return fit(config, run_dir, overwrite=overwrite, data=data, callbacks=watchers, progress=progress, log=log,
               figures=figures)


def resume(run: Run | str | Path, *, epochs: int | None = None, lr: float | None = None,
           time_budget: float | None = None, device: str | None = None, threads: int | None = None,
           precision: str | None = None, cuda_graphs: bool | None = None, from_best: bool = False,
           data_changed_ok: bool = False, data: datalib.Data | None = None, figures: bool | None = None,
           report: bool = True, tensorboard_log: bool | None = None, callbacks: Iterable[Callback] = (),
           progress: bool | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Continue a run from its latest checkpoint (from_best=True: its best) and return its folder; the settings given
    change (more epochs, a new time budget, a lower learning rate...), the rest stay as saved. Figures are drawn as
    the run did before unless `figures` says otherwise; the report, TensorBoard and `callbacks` watch as in train."""
    meta = run.meta if isinstance(run, Run) else folder.read_meta(run)
    run_dir = run.path if isinstance(run, Run) else Path(run)
    given = dict(epochs=epochs, lr=lr, time_budget=time_budget, device=device, threads=threads, precision=precision,
                 cuda_graphs=cuda_graphs)
    changes = {key: value for key, value in given.items() if value is not None}
    figures = meta.figures if figures is None else figures
    watchers = [*default_callbacks(figures, report, tensorboard_log), *callbacks]
    return training.resume(run_dir, changes, meta=meta, from_best=from_best, data_changed_ok=data_changed_ok,
                           figures=figures, data=data, callbacks=watchers, progress=progress, log=log)


MAX_NAME_BYTES = 255  # a folder name's limit on Linux, macOS and Windows file systems (bytes, not characters)


def check_run_name(name: str, runs: str | Path) -> str:
    """A run name is one folder name inside the runs folder: no separators, not "." or "..", not absolute."""
    if not name or name != name.strip() or name.startswith(".") or any(c in name for c in "/\\") or \
            not name.isprintable():
        raise BetaVAEError(f"run name {name!r} must be a single folder name (no '/', no leading dot or space, no "
                           f"control characters such as a newline, not empty); runs are made inside --runs ({runs}), "
                           "which says where")
    if len(name.encode()) > MAX_NAME_BYTES:
        raise BetaVAEError(f"run name {name[:40]!r}... is {len(name.encode())} bytes, more than a folder name may be "
                           f"({MAX_NAME_BYTES}); choose a shorter --name")
    return name


def disentangle(run: Run | str | Path, seed: int = 0, data_dir: str | None = None,
                sizes: dict[str, dict[str, Any]] | None = None,
                log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """The five disentanglement metrics of a finished run on a data set with ground-truth factors
    (RUN/disentanglement.json), its two factor figures, and its report refreshed with both when it has one."""
    run = run if isinstance(run, Run) else Run.open(run)
    run.require_writable()  # before the grid is encoded
    result = factors.evaluate_run(run, seed, data_dir, sizes, **({"log": log} if log else {}))
    run_figures.save_factor_figures(run, result)
    if (run.path / REPORT).is_file():
        write_report(run)  # the figures and the validation split only: the grid is not loaded again
    return result


def select(runs: Iterable[Run | str | Path], n: int = udr.SAMPLE_IMAGES, variant: str = udr.DEFAULT_VARIANT,
           seed: int = 0, write_reports: bool = False, log: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Rank finished runs trained alike by UDR (RUN/udr.json to each; evaluation/udr.py) and refresh the report of each
    run that has one, to show its score and rank (write_reports=True: write one for every run). Returns the ranking,
    best first."""
    if isinstance(runs, (str, Path)):  # list("runs/a") would be its characters
        raise BetaVAEError(f"select ranks several runs: give a list of run folders, e.g. [{str(runs)!r}, ...]")
    result = udr.select(list(runs), n, variant, seed, **({"log": log} if log else {}))
    for record in result["ranking"]:
        run = Run.open(record["run"])
        if write_reports or (run.path / REPORT).is_file():
            write_report(run)
    return result
