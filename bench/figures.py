"""Figure and report benchmarks (printed, no assertions):

1. overhead of the per-epoch figures: the default run (preset betavae) trained with and without them, same length;
2. t-SNE of 5000 posterior means (one panel);
3. the report in headless Chromium: time until the explorer is ready, and the decode time of a slider change.

Usage: python bench/figures.py [--epochs 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import betavae
from betavae import data as datalib
from betavae.pictures import draw, run_figures

ROOT = Path(__file__).resolve().parent.parent


def timed_run(config, folder: Path, with_figures: bool, data) -> tuple[float, Path]:
    start = time.perf_counter()
    run = betavae.train(config, folder, data=data, figures=with_figures, tensorboard_log=False, progress=False,
                        log=lambda line: None)
    return time.perf_counter() - start, run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    config = betavae.preset("betavae").replace(epochs=args.epochs)
    data = datalib.load(config.dataset, val_size=config.val_size)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        plain, _ = timed_run(config, tmp / "plain", False, data)
        drawn, run = timed_run(config, tmp / "figures", True, data)
        print(f"default run ({args.epochs} epochs, figures at epochs {config.figure_epochs} and the last, latent "
              f"means at {config.latent_map_epochs}, report at the end):")
        print(f"  without figures {plain:.1f} s, with figures {drawn:.1f} s: overhead {100 * (drawn / plain - 1):+.1f}% "
              "(target <= 10%)")

        means, _ = run_figures.read_latents(run)
        last = means[max(means)]
        start = time.perf_counter()
        draw.reduce_2d({0: last}, "tsne", seed=0)
        print(f"t-SNE of {len(last)} posterior means ({last.shape[1]}-dim): {time.perf_counter() - start:.1f} s "
              "(target <= 30 s)")

        node, chromium = shutil.which("node"), shutil.which("chromium")
        if node and chromium:
            loads, decodes = [], []
            for _ in range(5):
                out = subprocess.run([node, "--experimental-websocket", str(ROOT / "tests/js/browser_check.mjs"),
                                      str(run / "report.html")], capture_output=True, text=True, check=True)
                page = json.loads(out.stdout)
                loads.append(page["load_ms"])
                decodes.append(page["decode_ms"])
            size = (run / "report.html").stat().st_size / 1e6
            print(f"report ({size:.1f} MB) in headless Chromium, 5 page loads: explorer ready after "
                  f"{sorted(loads)[2]:.0f} ms (median; from navigation start, parsing included); slider change "
                  f"decoded and drawn in {sorted(decodes)[2]:.2f} ms (median; target < 50 ms)")
        else:
            print("report timing skipped: node or chromium is missing")


if __name__ == "__main__":
    main()
