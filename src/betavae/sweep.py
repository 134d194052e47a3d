"""`betavae sweep`: one run per (value, seed) of an objective's KL weight, a summary table (CSV and Markdown) and a
rate-distortion figure.

The swept parameter is one the chosen objective reads (beta for beta-VAE, gamma for capacity); varying one it ignores
would train identical runs, so it is refused. Points already finished are skipped and interrupted ones resumed, so an
interrupted sweep simply continues. The summary uses the final validation numbers (the test set stays for `betavae
evaluate`). Points run one after another here; the Ray backend (training/distributed.py) sends them to a cluster and
aggregates exactly the same way.
"""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import atomic
from .config import Config
from .errors import BetaVAEError
from .model.objectives import OBJECTIVES
from .runs import Run
from .training import folder, resume

SUMMARY_CSV, SUMMARY_MD, FIGURE = "summary.csv", "summary.md", "rate_distortion.png"
SWEEPABLE = ("beta", "gamma")


@dataclass(frozen=True)
class Point:
    parameter: str
    value: float
    seed: int

    @property
    def name(self) -> str:
        return f"{self.parameter}-{self.value:g}-seed-{self.seed}"


def check_parameter(base: Config, parameter: str) -> None:
    """Refuse to sweep a parameter the chosen objective does not read (the runs would be identical)."""
    reads = OBJECTIVES[base.objective].parameters
    if parameter not in SWEEPABLE or parameter not in reads:
        usable = [p for p in SWEEPABLE if p in reads]
        raise BetaVAEError(f"the {base.objective} objective ignores {parameter}, so every point would be the same run; "
                           f"sweep --{usable[0]} instead (it reads {', '.join(reads)})")


def points(parameter: str, values: Iterable[float], seeds: Iterable[int]) -> list[Point]:
    values, seeds = list(dict.fromkeys(values)), list(dict.fromkeys(seeds))  # each point once
    if not values or not all(v >= 0 and math.isfinite(v) for v in values):
        raise BetaVAEError(f"--{parameter} needs one or more finite values >= 0, got {values}")
    if not seeds:
        raise BetaVAEError("--seeds needs at least one seed")
    return [Point(parameter, v, s) for v in values for s in seeds]


def run_point(base: Config, sweep_dir: str, point: Point, figures: bool = False) -> str:
    """Train one point (or resume it, or skip it when finished); returns its run folder. Importable by workers."""
    from .api import default_callbacks, train

    run_dir = Path(sweep_dir) / point.name
    if (run_dir / folder.STATUS).is_file() and Run.open(run_dir).finished:
        return str(run_dir)
    config = base.replace(**{point.parameter: point.value, "seed": point.seed})
    if not (run_dir / folder.CONFIG).is_file():
        train(config, run_dir, figures=figures, report=False, tensorboard_log=False, progress=False)
    else:  # started before: continued, and refused if its settings changed but for those a resume may change
        resume(run_dir, config.to_dict(), callbacks=default_callbacks(figures, report=False, tensorboard_log=False),
               figures=figures, progress=False)
    return str(run_dir)


def summarize(sweep_dir: Path, chosen: list[Point]) -> list[dict]:
    """One row per finished point: final validation (else training) recon, KL, negative ELBO, active units."""
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
        rows.append({point.parameter: point.value, "seed": point.seed, "split": split, "epochs": last["epoch"],
                     "recon": round(m["recon"], 3), "kl": round(m["kl"], 3), "neg_elbo": round(m["neg_elbo"], 3),
                     "active_units": m.get("active_units"), "run": point.name})
    return rows


def write_summary(sweep_dir: Path, rows: list[dict], parameter: str) -> None:
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


def sweep(base: Config, sweep_dir: str | Path, values: Iterable[float], seeds: Iterable[int] = (0,),
          backend: str = "local", figures: bool = False, log: Callable[[str], None] = print,
          parameter: str = "beta") -> list[dict]:
    """Run every point not yet finished, then write the summary and the rate-distortion figure."""
    check_parameter(base, parameter)
    sweep_dir = Path(sweep_dir)
    chosen = points(parameter, values, seeds)
    for point in chosen:  # every point's configuration is valid before any folder is made
        base.replace(**{point.parameter: point.value, "seed": point.seed})
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if backend == "ray":
        from .training.distributed import ray_map

        ray_map(run_point, [(base, str(sweep_dir), p, figures) for p in chosen])
    elif backend == "local":
        for i, point in enumerate(chosen, 1):
            log(f"sweep point {i}/{len(chosen)}: {point.name}")
            run_point(base, str(sweep_dir), point, figures)
    else:
        raise BetaVAEError(f"unknown sweep backend {backend!r}; choose local or ray")
    rows = summarize(sweep_dir, chosen)
    write_summary(sweep_dir, rows, parameter)
    return rows
