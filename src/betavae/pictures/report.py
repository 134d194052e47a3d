"""The run report: one self-contained HTML file (no server, no CDN) with the configuration, metrics, every figure, and
an interactive latent explorer that decodes in the browser from the decoder weights embedded in the page."""

from __future__ import annotations

import base64
import copy
import html
import json
import math
import sys
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .. import atomic, samplers
from .. import data as datalib
from ..model.networks import ACTIVATIONS, VAE, ConvDecoder
from ..errors import first_line
from ..runs import Run
from ..training import folder
from ..training.callbacks import kl_per_dim
from .draw import PALETTE, pca_2d, pixel_levels

MAX_POINTS = 2000
REPORT = folder.REPORT


def b64(array: np.ndarray | torch.Tensor, dtype=np.float32) -> str:
    """Little-endian bytes of an array, base64-encoded (what decoder.js reads)."""
    if isinstance(array, torch.Tensor):
        array = array.detach().cpu().numpy()
    return base64.b64encode(np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<")).tobytes()).decode()


ACTIVATION_NAMES = {kind: name for name, kind in ACTIVATIONS.items()}  # nn.ReLU -> "relu": decoder.js knows each


def decoder_spec(model: VAE) -> list[dict[str, Any]]:
    """The decoder as a flat list of layers (linear, relu, silu, reshape, conv_transpose, crop) for decoder.js."""
    return list(_layers(model.decoder))


def _layers(module: nn.Module):
    if isinstance(module, ConvDecoder):
        yield from _layers(module.dense)
        yield {"type": "reshape", "shape": list(module.start)}
        yield from _layers(module.up)
        yield {"type": "crop", "height": module.size[0], "width": module.size[1]}
    elif isinstance(module, nn.Sequential):
        for child in module:
            yield from _layers(child)
    elif isinstance(module, nn.Linear):
        yield {"type": "linear", "in": module.in_features, "out": module.out_features,
               "weight": b64(module.weight), "bias": b64(module.bias)}
    elif type(module) in ACTIVATION_NAMES:
        yield {"type": ACTIVATION_NAMES[type(module)]}
    elif isinstance(module, nn.ConvTranspose2d):
        yield {"type": "conv_transpose", "in": module.in_channels, "out": module.out_channels,
               "kernel": module.kernel_size[0], "stride": module.stride[0], "padding": module.padding[0],
               "weight": b64(module.weight), "bias": b64(module.bias)}
    else:
        raise TypeError(f"the report's decoder cannot export {type(module).__name__}")


def explorer_payload(model: VAE, split: datalib.Split, kl_per_dim: list[float], n_points: int = MAX_POINTS,
                     seed: int = 0) -> dict:
    """Everything the explorer needs: decoder layers, KL order, and map points (PCA of posterior means, images of
    every channel, as the decoder's C*H*W outputs are ordered)."""
    n = min(n_points, len(split))
    images = datalib.as_float(split.images[:n])
    means = model.posterior_means(images)
    xy = pca_2d(means, seed)(means)
    limit = float(np.ceil(max(3.0, np.abs(means).max() if n else 0.0)))
    return {
        "layers": decoder_spec(model), "likelihood": model.likelihood.name, "latent_dim": model.latent_dim, "image_shape": list(model.image_shape),
        "order": [int(i) for i in np.argsort(-np.asarray(kl_per_dim), kind="stable")],
        "kl": [float(k) for k in kl_per_dim], "range": limit, "palette": PALETTE,
        "points": {"xy": b64(xy), "means": b64(means),
                   "images": b64(pixel_levels(images), np.uint8),  # (N, C, H, W): every channel
                   "labels": split.labels[:n].tolist(), "indices": list(range(n))},
    }


def asset(name: str) -> str:
    return resources.files("betavae.assets").joinpath(name).read_text()


def image_tag(path: Path, caption: str) -> str:
    if not path.is_file():
        return ""
    kind = "gif" if path.suffix == ".gif" else "png"
    data = base64.b64encode(path.read_bytes()).decode()
    return (f'<figure><img src="data:image/{kind};base64,{data}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def table(rows: list[tuple[str, Any]]) -> str:
    cells = "".join(f"<tr><th>{html.escape(str(k))}</th><td class=num>{html.escape(_fmt(v))}</td></tr>"
                    for k, v in rows)
    return f"<table>{cells}</table>"


def _fmt(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def metrics_rows(record: dict) -> list[tuple[str, Any]]:
    rows = [("epoch", record["epoch"]), ("steps", record["step"])]
    for split in ("train", "val"):
        if split in record:
            m = record[split]
            rows += [(f"{split} {k}", m[k]) for k in ("loss", "recon", "kl", "neg_elbo", "active_units") if k in m]
    return rows


FIGURES = (  # file under figures/, caption; latent maps and rate-distortion figures are found by name
    ("curves.png", "Training curves: reconstruction, KL and negative ELBO per epoch (sampled z); KL per latent "
                   "dimension; active units"),
    ("reconstructions.gif", "Validation images (top) and reconstructions (bottom) across epochs"),
    ("samples.gif", "Decodings of the same z ~ N(0, I) across epochs (the likelihood's means)"),
    ("interpolation.png", "Interpolation between the posterior means of image pairs, 16 steps"),
    ("traversal.png", "Latent traversals, rows sorted by KL"),
    *((f"{sampler.figure_name()}.png", f"Decodings of {sampler.caption()}")  # the figures of the fitted samplers
      for sampler in samplers.SAMPLERS.values() if sampler.fitted),
)
FACTOR_FIGURES = (
    ("mutual_information.png", "Mutual information of each latent with each factor, over the factor's entropy "
                               "(betavae disentanglement)"),
    ("traversal_factors.png", "Latent traversals labelled with the factor each latent captures best"),
)


def missing_figures(run: Run) -> list[str]:
    """The figures a finished run should have and does not (the report leaves them out)."""
    optional = {f"{sampler.figure_name()}.png" for sampler in samplers.SAMPLERS.values()}  # as the data allow
    expected = [name for name, _ in FIGURES if name not in optional] + ["latent_map_pca.png"]
    return [name for name in expected if not (run.figure_dir / name).is_file()]


def write_report(run: Run) -> Path:
    """Write runs/<name>/report.html from the run (its model, and its reference split alone, loaded when needed)."""
    records = run.metrics
    last = records[-1] if records else {"epoch": 0, "step": 0, "train": {"kl_per_dim": [0.0] * run.config.latent_dim}}
    kl = kl_per_dim(last)
    model = copy.deepcopy(run.model).cpu()  # leave a GPU model be
    payload = explorer_payload(model, run.reference_split(), kl, seed=run.config.seed)
    payload["samplers"] = samplers.explorer_samplers(run)
    out = run.figure_dir
    figures_html = "".join([
        *[image_tag(out / name, caption) for name, caption in FIGURES],
        *[image_tag(p, f"Latent map ({p.stem.split('_')[-1]})") for p in sorted(out.glob("latent_map_*.png"))],
        *[image_tag(p, p.stem.replace("_", " ")) for p in sorted(out.glob("rate_distortion*.png"))],
        *[image_tag(out / name, caption) for name, caption in FACTOR_FIGURES],
    ])
    evaluation_html = results_html(run)
    config = run.config
    page = TEMPLATE.format(
        title=html.escape(f"betavae run {run.name}"), css=asset("report.css"),
        summary=html.escape(f"{config.dataset}, {config.arch} {config.hidden}, {config.latent_dim} latents, "
                            f"{run.describe_objective()}, {config.pixels} pixels, {last['epoch']} epochs"),
        metrics=table(metrics_rows(last)), note=html.escape(last.get("note", "")),
        config=table(sorted(config.to_dict().items())), figures=figures_html, evaluation=evaluation_html,
        payload=json.dumps(payload).replace("</", "<\\/"), decoder_js=asset("decoder.js"),
        explorer_js=asset("explorer.js"), samplers=html.escape(samplers.HELP),
        means=html.escape(run.model.likelihood.title))
    path = run.path / REPORT
    atomic.write_text(path, page)
    return path


def results_html(run: Run) -> str:
    """The sections of the results `betavae evaluate` and `betavae disentanglement` saved in the run, if any."""
    sections = ""
    evaluation = saved_result(run.path / folder.EVALUATION, f"betavae evaluate {run.path}", run.meta.run_id)
    problem = evaluation_problem(evaluation) if evaluation is not None else ""
    if problem:
        damaged(run.path / folder.EVALUATION, problem, f"betavae evaluate {run.path}")
    elif evaluation is not None:
        sections += f"<h2>Evaluation</h2><pre>{html.escape(json.dumps(evaluation, indent=2, sort_keys=True))}</pre>"
    disentanglement = saved_result(run.path / folder.DISENTANGLEMENT, f"betavae disentanglement {run.path}",
                                   run.meta.run_id)
    if disentanglement is not None:
        scores = disentanglement.get("scores")
        if isinstance(scores, dict) and all(is_finite(v) for v in scores.values()):
            sections += "<h2>Disentanglement</h2>" + table(list(scores.items()))
        else:
            damaged(run.path / folder.DISENTANGLEMENT, "its scores are not a table of numbers",
                    f"betavae disentanglement {run.path}")
    return sections + udr_html(run)


def udr_html(run: Run) -> str:
    """The run's UDR and rank among the runs `betavae select` compared it with, when its udr.json names it."""
    command = f"betavae select {run.path} RUN ..."
    record = saved_result(run.path / folder.UDR, command, run.meta.run_id)
    if record is None:
        return ""
    problem = udr_problem(record, run)
    if problem:
        damaged(run.path / folder.UDR, problem, command)
        return ""
    best = Path(record["best"]).name
    text = (f"UDR ({record.get('variant', '?')}) {record['udr']:.3f}: rank {record['rank']} of {record['of']} runs "
            f"trained alike, on {record.get('images', '?')} {record.get('split', '?')} images; the best is "
            + ("this run." if best == run.name else f"{best}."))
    against = [(f"against {Path(other).name}", score) for other, score in sorted(record["against"].items())]
    return (f"<h2>Unsupervised Disentanglement Ranking</h2><p>{html.escape(text)}</p>" + table(against) +
            '<p class="note">Pair scores: how one-to-one this run\'s informative latents match the other run\'s (UDR '
            "is their median); written by betavae select.</p>")


def udr_problem(record: dict[str, Any], run: Run) -> str:
    """What is wrong with a udr.json for this run's report ("" when nothing)."""
    if not all(isinstance(record.get(key), str) for key in ("run", "best")):
        return "its run and best are not names"
    if Path(record["run"]).name != run.name:
        return f"it ranks another run ({Path(record['run']).name[:80]})"
    against = record.get("against")
    if not (is_number(record.get("udr")) and all(isinstance(record.get(key), int) for key in ("rank", "of"))
            and isinstance(against, dict) and all(is_number(value) for value in against.values())):
        return "its scores are not numbers"
    return ""


EVALUATION_NUMBERS = ("neg_elbo", "neg_elbo_sd", "distortion", "rate", "bits_per_dim", "nll", "nll_sem")


def evaluation_problem(evaluation: dict[str, Any]) -> str:
    """What is wrong with an evaluation.json for the report ("" when nothing): its likelihood figures and active
    units must be the finite numbers `betavae evaluate` writes."""
    for key in ("elbo", "elbo_grey", "elbo_binarized", "iwae"):
        section = evaluation.get(key)
        if key in evaluation and not (isinstance(section, dict) and all(
                is_finite(section[name]) for name in EVALUATION_NUMBERS if name in section)):
            return f"its {key} figures are not finite numbers"
    units = evaluation.get("active_units", 0)
    if not (type(units) is int and units >= 0):
        return "its active_units is not a count"
    return ""


def is_finite(value: Any) -> bool:
    return is_number(value) and math.isfinite(value)


def is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def saved_result(path: Path, command: str, run_id: str) -> dict[str, Any] | None:
    """A result a command saved as a JSON object for this run; None when there is none, or (with a warning line) when
    it is damaged or another run's (copied in): the report leaves its section out rather than fail or mislead."""
    if not path.exists():
        return None
    try:
        result = json.loads(path.read_bytes())
        owner = result.get("run_id") if isinstance(result, dict) else None
        if isinstance(result, dict) and (not owner or not run_id or owner == run_id):
            return result
        problem = f"it belongs to another run, run id {str(owner)[:12]}" if owner else "not a JSON object"
    except (OSError, ValueError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        problem = first_line(error, 80)
    damaged(path, problem, command)
    return None


def damaged(path: Path, problem: str, command: str) -> None:
    print(f"betavae: warning: {path} is damaged ({problem}); the report leaves it out (write it again with: "
          f"{command})", file=sys.stderr)


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{css}</style></head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
<h2>Latent explorer</h2>
<p class="note">Sliders set each latent coordinate (largest KL first); the image is decoded in this page from the
embedded decoder weights ({means} means, in colour for images of three channels). Click a point of the map (PCA of
posterior means of validation images) to see that image and move the sliders to its mean. "draw z" sets the sliders
to a new draw from the chosen sampler ({samplers}). Decode time: <span id="decode-time">-</span>.</p>
<div class="explorer">
  <div class="images"><canvas id="decoded" title="decoded"></canvas><canvas id="original" title="original"></canvas>
    <div class="note">left: decoded from the sliders; right: <span id="selected">the chosen image</span></div>
    <div class="draw"><button id="draw-z">draw z</button> from <select id="sampler"></select>
      <select id="digit" title="the label to draw"></select></div>
    <div id="sliders"></div></div>
  <div><canvas id="map" width="440" height="440"></canvas><div id="legend"></div></div>
</div>
<script type="application/json" id="explorer-data">{payload}</script>
<script>{decoder_js}</script>
<script>{explorer_js}</script>
<h2>Final metrics</h2>
{metrics}
<p class="note">{note}</p>
{evaluation}
<h2>Figures</h2>
{figures}
<h2>Configuration</h2>
{config}
</body></html>
"""
