"""The run report: one self-contained HTML file (no server, no CDN) with the configuration, metrics, every figure, and
an interactive latent explorer that decodes in the browser from the decoder weights embedded in the page."""

from __future__ import annotations

import base64
import copy
import html
import json
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from . import atomic, gallery, runs
from . import data as datalib
from .figures import PALETTE
from .models import ACTIVATIONS, VAE, ConvDecoder

MAX_POINTS = 2000
REPORT = "report.html"


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


def pca_2d(x: np.ndarray) -> np.ndarray:
    centred = x - x.mean(0)
    _, _, vt = np.linalg.svd(centred.astype(np.float64), full_matrices=False)
    return (centred @ vt[:2].T).astype(np.float32)


def explorer_payload(model: VAE, split: datalib.Split, kl_per_dim: list[float], n_points: int = MAX_POINTS) -> dict:
    """Everything the explorer needs: decoder layers, KL order, and map points (PCA of posterior means, images)."""
    n = min(n_points, len(split))
    images = split.images[:n]
    means = gallery.posterior_means(model, images) if n else np.zeros((0, model.latent_dim), np.float32)
    limit = float(np.ceil(max(3.0, np.abs(means).max() if n else 0.0)))
    return {
        "layers": decoder_spec(model), "latent_dim": model.latent_dim, "image_shape": list(model.image_shape),
        "order": [int(i) for i in np.argsort(-np.asarray(kl_per_dim), kind="stable")],
        "kl": [float(k) for k in kl_per_dim], "range": limit, "palette": PALETTE,
        "points": {"xy": b64(pca_2d(means) if n > 1 else np.zeros((n, 2))), "means": b64(means),
                   "images": b64((images[:, 0] * 255).round(), np.uint8),
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


def write_report(run_dir: str | Path, model: VAE | None = None, data: datalib.Data | None = None) -> Path:
    """Write runs/<name>/report.html from the run folder (loading the model and data when not given)."""
    run_dir = Path(run_dir)
    config, _ = runs.read_config(run_dir)
    records = runs.read_metrics(run_dir)
    model = model or runs.load(run_dir)
    data = data or datalib.load(config.dataset, config.data_dir, config.val_size)
    last = records[-1] if records else {"epoch": 0, "step": 0, "train": {"kl_per_dim": [0.0] * config.latent_dim}}
    kl = last.get("val", last["train"])["kl_per_dim"]
    payload = explorer_payload(copy.deepcopy(model).cpu(), gallery.reference_split(data), kl)  # leave a GPU model be
    out = gallery.figure_dir(run_dir)
    figures_html = "".join([
        image_tag(out / "curves.png", "Training curves: reconstruction, KL and negative ELBO per epoch (sampled z); "
                                      "KL per latent dimension; active units"),
        image_tag(out / "reconstructions.gif", "Validation images (top) and reconstructions (bottom) across epochs"),
        image_tag(out / "samples.gif", "Decodings of the same z ~ N(0, I) across epochs (Bernoulli means)"),
        image_tag(out / "interpolation.png", "Interpolation between the posterior means of image pairs, 16 steps"),
        image_tag(out / "traversal.png", "Latent traversals, rows sorted by KL"),
        *[image_tag(p, f"Latent map ({p.stem.split('_')[-1]})") for p in sorted(out.glob("latent_map_*.png"))],
        *[image_tag(p, p.stem.replace("_", " ")) for p in sorted(out.glob("rate_distortion*.png"))],
        image_tag(out / "mutual_information.png", "Mutual information of each latent with each factor, over the "
                                                  "factor's entropy (betavae disentanglement)"),
        image_tag(out / "traversal_factors.png", "Latent traversals labelled with the factor each latent captures "
                                                 "best"),
    ])
    evaluation = run_dir / "evaluation.json"
    evaluation_html = (f"<h2>Evaluation</h2><pre>{html.escape(evaluation.read_text())}</pre>"
                       if evaluation.is_file() else "")
    disentanglement = run_dir / "disentanglement.json"
    if disentanglement.is_file():
        scores = json.loads(disentanglement.read_text())["scores"]
        evaluation_html += "<h2>Disentanglement</h2>" + table(list(scores.items()))
    page = TEMPLATE.format(
        title=html.escape(f"betavae run {run_dir.name}"), css=asset("report.css"),
        summary=html.escape(f"{config.dataset}, {config.arch} {config.hidden}, {config.latent_dim} latents, "
                            f"objective {config.objective}, beta {config.beta}, {config.pixels} pixels, "
                            f"{last['epoch']} epochs"),
        metrics=table(metrics_rows(last)), note=html.escape(last.get("note", "")),
        config=table(sorted(config.to_dict().items())), figures=figures_html, evaluation=evaluation_html,
        payload=json.dumps(payload).replace("</", "<\\/"), decoder_js=asset("decoder.js"),
        explorer_js=asset("explorer.js"))
    path = run_dir / REPORT
    atomic.write_text(path, page)
    return path


TEMPLATE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title><style>{css}</style></head>
<body>
<h1>{title}</h1>
<p>{summary}</p>
<h2>Latent explorer</h2>
<p class="note">Sliders set each latent coordinate (largest KL first); the image is decoded in this page from the
embedded decoder weights (Bernoulli means). Click a point of the map (PCA of posterior means of validation images) to
see that image and move the sliders to its mean. Decode time: <span id="decode-time">-</span>.</p>
<div class="explorer">
  <div class="images"><canvas id="decoded" title="decoded"></canvas><canvas id="original" title="original"></canvas>
    <div class="note">left: decoded from the sliders; right: <span id="selected">the chosen image</span></div>
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
