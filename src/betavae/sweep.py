"""`betavae sweep`: one run per combination of the varied values and seeds, a summary table (CSV and Markdown) and a
rate-distortion figure.

Any configuration field or setting of the chosen objective can be varied (`--vary gamma=10,35,100`, several `--vary`
for a grid); one the objective does not read is refused before any run starts, since every point would be the same
run. Points already finished are skipped and interrupted ones resumed, so an interrupted sweep simply continues. The
summary uses the final validation numbers (the test set stays for `betavae evaluate`). Points run one after another
here, or `jobs` side by side in processes of their own (each with its share of the cores); the Ray backend
(training/distributed.py) sends them to a cluster and aggregates exactly the same way.

`train_seeds` is the selection recipe on the same machinery: one run per seed, then Unsupervised Disentanglement
Ranking over them (evaluation/udr.py) and the UDR-best run marked in the summary and in the folder's udr.json.

A sweep goes into a new or empty folder, which it marks as its own (sweep.json), or continues one it made; a symbolic
link or a folder of a user's files is refused, so that no summary overwrites theirs and no run lands among them.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import itertools
import json
import multiprocessing
import os
import re
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import atomic
from .config import Config
from .errors import BetaVAEError
from .evaluation.udr import RESULT as UDR_RESULT
from .runs import Run
from .training import folder, resume
from .training.resuming import changed_fields, requested_config
from .training.lock import make_folder
from .version import __version__

SUMMARY_CSV, SUMMARY_MD, FIGURE = "summary.csv", "summary.md", "rate_distortion.png"
MARK = "sweep.json"  # a folder a sweep made (and so may write its summary into)
POINT_FOLDER = re.compile(r"(.+-)?seed-\d+")  # the name of a point's run folder (Point.name)


@dataclass(frozen=True)
class Point:
    """One run of a sweep: the values it changes and its seed."""

    changes: tuple[tuple[str, Any], ...]
    seed: int

    @property
    def name(self) -> str:
        values = "_".join(f"{key}-{value:g}" if isinstance(value, float) else f"{key}-{value}"
                          for key, value in self.changes)
        return f"{values}-seed-{self.seed}" if values else f"seed-{self.seed}"

    def config(self, base: Config) -> Config:
        return base.replace(**dict(self.changes), seed=self.seed)


def parse_vary(texts: Iterable[str]) -> dict[str, list[str]]:
    """['gamma=10,35', 'lr=1e-3'] -> {'gamma': ['10', '35'], 'lr': ['1e-3']}."""
    vary: dict[str, list[str]] = {}
    for text in texts:
        name, _, values = text.partition("=")
        items = [v.strip() for v in values.split(",")]
        if not name.strip() or not all(items):
            raise BetaVAEError(f"--vary takes NAME=V1,V2 (e.g. gamma=10,35,100, no empty value), got {text!r}")
        name = name.strip().replace("-", "_")
        if name in vary:
            raise BetaVAEError(f"{name} is varied twice (--vary {name}=... or --beta, given more than once); give all "
                               f"its values once, e.g. --vary {name}={','.join(vary[name] + items)}")
        vary[name] = items
    return vary


def points(base: Config, vary: Mapping[str, Sequence[Any]], seeds: Iterable[int]) -> list[Point]:
    """Every combination of the varied values and seeds, each once, each validated (values resolved to their types)
    before any folder is made."""
    seeds = list(seeds)
    if not vary or not all(vary.values()):
        raise BetaVAEError("a sweep varies at least one value, e.g. --vary beta=0.5,1,4")
    if not seeds:
        raise BetaVAEError("--seeds needs at least one seed")
    if "seed" in vary:
        raise BetaVAEError("vary seeds with --seeds, not --vary seed=...")
    chosen = []
    for combination in itertools.product(*vary.values()):
        resolved = base.replace(**dict(zip(vary, combination)))  # refuses what the objective does not read
        chosen += [Point(tuple((key, value_of(resolved, key)) for key in vary), seed) for seed in seeds]
    repeated = next((point for i, point in enumerate(chosen) if point in chosen[:i]), None)
    if repeated is not None:  # "1,1" or "1,1.0": one point asked for twice, which a summary would show once
        shown = ", ".join(f"{key}={value}" for key, value in repeated.changes)
        raise BetaVAEError(f"the sweep asks for {shown} with seed {repeated.seed} twice; give each value and seed "
                           "once")
    return chosen


def value_of(config: Config, key: str) -> Any:
    """A configuration field's value, or a setting of its objective."""
    return config.settings[key] if key in config.settings else getattr(config, key)


def run_point(base: Config, sweep_dir: str, point: Point, figures: bool = False) -> str:
    """Train one point (or resume it, or skip it when finished); returns its run folder. Importable by workers."""
    from .api import default_callbacks, train

    run_dir = Path(sweep_dir) / point.name
    config = point.config(base)
    run = Run.open(run_dir) if (run_dir / folder.STATUS).is_file() else None
    if run is not None and run.finished and not training_changes(run, config):
        return str(run_dir)
    if not (run_dir / folder.CONFIG).is_file():
        train(config, run_dir, figures=figures, report=False, tensorboard_log=False, progress=False)
    else:  # started before, or finished and asked to train further: continued (check_points refused other changes)
        resume(run_dir, config.to_dict(), callbacks=default_callbacks(figures, report=False, tensorboard_log=False),
               figures=figures, progress=False)
    return str(run_dir)


def summarize(sweep_dir: Path, chosen: list[Point]) -> list[dict]:
    """One row per finished point: its varied values, final validation (else training) recon, KL, negative ELBO and
    active units."""
    rows = []
    for point in chosen:
        if not (sweep_dir / point.name / folder.STATUS).is_file():
            continue
        run = Run.open(sweep_dir / point.name)
        if not run.finished or not run.metrics:
            continue
        last = run.last_record
        split = "val" if "val" in last else "train"
        m = last[split]
        rows.append({**dict(point.changes), "seed": point.seed, "split": split, "epochs": last["epoch"],
                     "recon": round(m["recon"], 3), "kl": round(m["kl"], 3), "neg_elbo": round(m["neg_elbo"], 3),
                     "active_units": m.get("active_units"), "run": point.name})
    return rows


def write_summary(sweep_dir: Path, rows: list[dict], parameter: str) -> None:
    """summary.csv, summary.md and the rate-distortion figure, its points coloured by `parameter`."""
    if not rows:
        raise BetaVAEError(f"no finished points in {sweep_dir} to summarise")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    atomic.write_text(sweep_dir / SUMMARY_CSV, out.getvalue())
    header = "| " + " | ".join(rows[0]) + " |\n|" + "---|" * len(rows[0]) + "\n"
    body = "".join("| " + " | ".join(str(v) for v in row.values()) + " |\n" for row in rows)
    atomic.write_text(sweep_dir / SUMMARY_MD, header + body)
    from .pictures.draw import rate_distortion_figure, save_figure

    save_figure(rate_distortion_figure(rows, parameter), sweep_dir / FIGURE)


def sweep(base: Config, sweep_dir: str | Path, vary: Mapping[str, Sequence[Any]], seeds: Iterable[int] = (0,),
          backend: str = "local", figures: bool = False, log: Callable[[str], None] = print, jobs: int = 1
          ) -> list[dict]:
    """Run every point not yet finished, then write the summary and the rate-distortion figure (coloured by the
    first varied value)."""
    sweep_dir, base = Path(sweep_dir), share_cores(base, jobs, backend)
    chosen = points(base, vary, seeds)
    check_before_marking(base, sweep_dir, chosen, backend)
    open_sweep_folder(sweep_dir)
    run_points(base, sweep_dir, chosen, backend, figures, jobs, log)
    rows = summarize(sweep_dir, chosen)
    write_summary(sweep_dir, rows, next(iter(vary)))
    return rows


def check_before_marking(base: Config, sweep_dir: Path, chosen: list[Point], backend: str) -> None:
    """Everything that can refuse a sweep, before its folder is made or marked: a refused command leaves no trace."""
    check_sweep_folder(sweep_dir)
    if backend not in ("local", "ray"):
        raise BetaVAEError(f"unknown sweep backend {backend!r}; choose local or ray")
    if backend == "ray" and importlib.util.find_spec("ray") is None:
        raise BetaVAEError("--backend ray needs Ray, which is not installed: pip install 'betavae[ray]'")
    for point in chosen:
        point.config(base)  # validated: a seed out of range, say
    check_points(base, sweep_dir, chosen)


def check_points(base: Config, sweep_dir: Path, chosen: list[Point]) -> None:
    """Before any training, refuse in one line a point folder that holds a user's files, or a run of other settings
    than the point's (a rerun under the same name with another option): it would be kept and summarised as this one."""
    for point in chosen:
        run_dir = sweep_dir / point.name
        if run_dir.is_symlink() or run_dir.exists() and not run_dir.is_dir():
            raise BetaVAEError(f"{run_dir} is not a folder of a run; move it out of the way or choose another --name")
        if (run_dir / folder.CONFIG).is_file():
            run, requested = Run.open(run_dir), point.config(base)
            requested_config(run_dir, run.config, requested.to_dict())
            check_trains_further(run, requested)
        elif run_dir.is_dir() and any(run_dir.iterdir()):
            raise BetaVAEError(f"{run_dir} holds files but no run; move them out of the way or choose another --name")


TRAINING_CHANGES = ("epochs", "lr", "time_budget")  # what a rerun may change of a finished point, to train it further


def training_changes(run: Run, requested: Config) -> list[str]:
    """The settings a rerun asks of a finished point that differ from those it was trained with (none for a point
    that has not finished: it is continued anyway)."""
    if not run.finished:
        return []
    return [name for name in changed_fields(run.config, requested) if name in TRAINING_CHANGES]


def check_trains_further(run: Run, requested: Config) -> None:
    """A finished point rerun with another --epochs, --lr or --time-budget is trained further with them (a resume),
    never kept as if it had those settings; a change that would train nothing is refused in one line."""
    changed = training_changes(run, requested)
    if not changed:
        return
    run_dir = run.path
    trained, budget = run.status["epoch"], run.config.time_budget
    more_time = "time_budget" in changed and budget and (not requested.time_budget or requested.time_budget > budget)
    if requested.epochs > trained or more_time:
        return
    was = ", ".join(f"{name} {getattr(run.config, name)}" for name in changed)
    asked = ", ".join(f"{name} {getattr(requested, name)}" for name in changed)
    raise BetaVAEError(f"{run_dir} has finished with {was}; this rerun asks {asked}, which would train nothing: give "
                       f"--epochs above {trained} to train the points further, or another --name for these settings")


def run_points(base: Config, sweep_dir: Path, chosen: list[Point], backend: str = "local", figures: bool = False,
               jobs: int = 1, log: Callable[[str], None] = print) -> None:
    """Train every point not yet finished: one after another, `jobs` side by side, or as Ray tasks."""
    check_points(base, sweep_dir, chosen)
    if backend == "ray":
        from .training.distributed import ray_map

        ray_map(run_point, [(base, str(sweep_dir), p, figures) for p in chosen], num_cpus_per_task=base.threads or 1)
    elif backend != "local":
        raise BetaVAEError(f"unknown sweep backend {backend!r}; choose local or ray")
    elif jobs > 1:
        side_by_side(base, sweep_dir, chosen, figures, jobs, log)
    else:
        for i, point in enumerate(chosen, 1):
            log(f"sweep point {i}/{len(chosen)}: {point.name}")
            run_point(base, str(sweep_dir), point, figures)


def side_by_side(base: Config, sweep_dir: Path, chosen: list[Point], figures: bool, jobs: int,
                 log: Callable[[str], None]) -> None:
    """Train the points `jobs` at a time, each in a fresh process (torch's thread count is per process); a point that
    fails lets the others finish, then its error is raised. On Ctrl-C the points not started are dropped."""
    pool = ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn"))
    try:
        futures = {pool.submit(run_point, base, str(sweep_dir), point, figures): point for point in chosen}
        log(f"training {len(chosen)} points, {jobs} at a time, {base.threads or 'torch default'} thread(s) each")
        errors = []
        for future in as_completed(futures):
            errors.append(future.exception())
            log(f"{futures[future].name}: " + ("done" if errors[-1] is None else f"failed: {errors[-1]}"))
    finally:
        pool.shutdown(cancel_futures=True)
    failed = [error for error in errors if error is not None]
    if failed:
        raise failed[0]


def cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def share_cores(base: Config, jobs: int, backend: str = "local") -> Config:
    """The configuration of runs trained `jobs` at a time: their --threads, else the cores shared out evenly; refused
    when the runs together would ask for more threads than there are cores."""
    if jobs < 1:
        raise BetaVAEError(f"--jobs must be at least 1, got {jobs}")
    if jobs == 1:
        return base
    if backend != "local":
        raise BetaVAEError("--jobs is for the local backend; Ray runs as many points at once as its cluster has cores "
                           "for (--threads per point)")
    threads = base.threads or max(1, cores() // jobs)
    if jobs * threads > cores():
        raise BetaVAEError(f"--jobs {jobs} with {threads} thread(s) each asks for {jobs * threads} threads on "
                           f"{cores()} cores, and every run would be slower than alone; lower --jobs or --threads "
                           "(jobs x threads at most the cores)")
    return base.replace(threads=threads)


# --- the selection recipe: several seeds, ranked by UDR ------------------------------------------------------------
def check_seeds(seeds: Iterable[int]) -> list[int]:
    """The seeds of a selection: two or more, each once."""
    seeds = list(seeds)
    repeated = sorted({seed for seed in seeds if seeds.count(seed) > 1})
    if repeated:
        raise BetaVAEError(f"seed {repeated[0]} is given twice in --seeds; give each seed once, e.g. 1,2,3")
    if len(seeds) < 2:
        raise BetaVAEError(f"UDR ranks runs against each other: --seeds needs at least 2 seeds (got {len(seeds)}), "
                           "e.g. 1,2,3")
    return seeds


def train_seeds(base: Config, parent: str | Path, seeds: Iterable[int], jobs: int = 1, backend: str = "local",
                figures: bool = True, variant: str = "lasso", log: Callable[[str], None] = print) -> dict[str, Any]:
    """Train `base` once per seed into parent/seed-N (finished runs kept, interrupted ones resumed), rank the runs by
    UDR and mark the best: each run's udr.json and report (when figures are drawn), parent/udr.json and the summary
    (its `best` column). Returns the ranking, best first (as `betavae.select`)."""
    from .api import select

    parent = Path(parent)
    chosen = [Point((), seed) for seed in check_seeds(seeds)]
    base = share_cores(base, jobs, backend)
    if (parent / folder.CONFIG).is_file():
        raise BetaVAEError(f"{parent} is a run, not a folder of seeds; choose another --name")
    check_before_marking(base, parent, chosen, backend)
    open_sweep_folder(parent)
    run_points(base, parent, chosen, backend, figures, jobs, log)
    result = select([parent / point.name for point in chosen], variant=variant, write_reports=figures, log=log)
    atomic.write_json(parent / UDR_RESULT, result)
    write_summary(parent, ranked_rows(summarize(parent, chosen), result), "seed")
    return result


def ranked_rows(rows: list[dict], result: dict[str, Any]) -> list[dict]:
    """The summary's rows with each run's UDR, its rank, and `best` on the UDR-best run."""
    by_name = {Path(record["run"]).name: record for record in result["ranking"]}
    best = Path(result["best"]).name
    return [{**row, "udr": round(by_name[row["run"]]["udr"], 3), "udr_rank": by_name[row["run"]]["rank"],
             "best": "best" if row["run"] == best else ""} for row in rows]


def open_sweep_folder(sweep_dir: Path) -> None:
    """Check the sweep folder, make it if new, and mark it as a sweep's own."""
    check_sweep_folder(sweep_dir)
    make_folder(sweep_dir)
    if not is_marked(sweep_dir):
        atomic.write_json(sweep_dir / MARK, {"format": 1, "betavae": __version__})


def is_marked(sweep_dir: Path) -> bool:
    """Whether the folder holds the mark betavae writes (a sweep.json of another tool, or damaged, is not it)."""
    path = sweep_dir / MARK
    try:
        if not path.is_file() or path.is_symlink() or path.stat().st_size > 4096:
            return False
        mark = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(mark, dict) and mark.get("format") == 1 and isinstance(mark.get("betavae"), str)


def check_sweep_folder(sweep_dir: Path) -> None:
    """Refuse, in one line, a sweep folder that is a symbolic link, a file, or a folder holding anything but a sweep:
    one betavae marked as its own, or one from before the mark (summaries and points' run folders alone)."""
    if sweep_dir.is_symlink() or sweep_dir.exists() and not sweep_dir.is_dir():
        what = "a symbolic link" if sweep_dir.is_symlink() else "not a folder"
        raise BetaVAEError(f"{sweep_dir} is {what}; a sweep folder must be a real folder, so that nothing is written "
                           "outside it: choose another --name")
    if not sweep_dir.is_dir() or is_marked(sweep_dir):
        return
    entries = list(sweep_dir.iterdir())
    points_made = [e for e in entries if POINT_FOLDER.fullmatch(e.name) and e.is_dir() and not e.is_symlink()]
    summaries = [e for e in entries if e.name in (SUMMARY_CSV, SUMMARY_MD, FIGURE, UDR_RESULT) and e.is_file()]
    if entries and not (points_made and len(points_made) + len(summaries) == len(entries)):
        shown = ", ".join(sorted(e.name for e in entries)[:3]) + (", ..." if len(entries) > 3 else "")
        raise BetaVAEError(f"{sweep_dir} holds files but no betavae sweep (it holds {shown}); a sweep goes into a new "
                           "or empty folder, or continues one it made: choose another --name")
