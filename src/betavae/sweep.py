"""`betavae sweep`: one run per (beta, seed) point, a summary table (CSV and Markdown) and a rate-distortion figure.

Points already finished are skipped and interrupted ones resumed, so an interrupted sweep simply continues. The
summary uses the final validation numbers (the test set stays for `betavae evaluate`). Points run one after another
here; the Ray backend (betavae.distributed) sends them to a cluster and aggregates exactly the same way.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable

from . import atomic, runs
from .config import Config
from .errors import BetaVAEError

SUMMARY_CSV, SUMMARY_MD, FIGURE = "summary.csv", "summary.md", "rate_distortion.png"


@dataclass(frozen=True)
class Point:
    beta: float
    seed: int

    @property
    def name(self) -> str:
        return f"beta-{self.beta:g}-seed-{self.seed}"


def points(betas: Iterable[float], seeds: Iterable[int]) -> list[Point]:
    betas, seeds = list(betas), list(seeds)
    if not betas or any(b < 0 for b in betas):
        raise BetaVAEError(f"--beta needs one or more values >= 0, got {betas}")
    if not seeds:
        raise BetaVAEError("--seeds needs at least one seed")
    return [Point(b, s) for b in betas for s in seeds]


def run_point(base: Config, sweep_dir: str, point: Point, figures: bool = False) -> str:
    """Train one point (or resume it, or skip it when finished); returns its run folder. Importable by workers."""
    from .training import train

    run_dir = Path(sweep_dir) / point.name
    state = runs.read_status(run_dir)["state"]
    if state == "finished":
        return str(run_dir)
    callbacks = []
    if figures:
        from .gallery import TrainingFigures

        callbacks.append(TrainingFigures(report=False))
    config = base.replace(beta=point.beta, seed=point.seed)
    resume = (run_dir / runs.CHECKPOINT).is_file()
    train(None if resume else config, run_dir, resume=resume, callbacks=callbacks, progress=False)
    return str(run_dir)


def summarize(sweep_dir: Path, chosen: list[Point]) -> list[dict]:
    """One row per finished point: final validation (else training) recon, KL, negative ELBO, active units."""
    rows = []
    for point in chosen:
        records = runs.read_metrics(sweep_dir / point.name)
        if not records or runs.read_status(sweep_dir / point.name)["state"] != "finished":
            continue
        last = records[-1]
        split = "val" if "val" in last else "train"
        m = last[split]
        rows.append({"beta": point.beta, "seed": point.seed, "split": split, "epochs": last["epoch"],
                     "recon": round(m["recon"], 3), "kl": round(m["kl"], 3), "neg_elbo": round(m["neg_elbo"], 3),
                     "active_units": m.get("active_units"), "run": point.name})
    return rows


def write_summary(sweep_dir: Path, rows: list[dict]) -> None:
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
    from .figures import rate_distortion_figure, save_figure

    save_figure(rate_distortion_figure(rows), sweep_dir / FIGURE)


def sweep(base: Config, sweep_dir: str | Path, betas: Iterable[float], seeds: Iterable[int] = (0,),
          backend: str = "local", figures: bool = False, log: Callable[[str], None] = print) -> list[dict]:
    """Run every point not yet finished, then write the summary and the rate-distortion figure."""
    sweep_dir = Path(sweep_dir)
    chosen = points(betas, seeds)
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if backend == "ray":
        from .distributed import ray_map

        ray_map(run_point, [(base, str(sweep_dir), p, figures) for p in chosen])
    elif backend == "local":
        for i, point in enumerate(chosen, 1):
            log(f"sweep point {i}/{len(chosen)}: {point.name}")
            run_point(base, str(sweep_dir), point, figures)
    else:
        raise BetaVAEError(f"unknown sweep backend {backend!r}; choose local or ray")
    rows = summarize(sweep_dir, chosen)
    write_summary(sweep_dir, rows)
    return rows
