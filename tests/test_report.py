"""The report's in-browser decoder must agree with torch: under Node.js, and in headless Chromium after a slider moves."""

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

from betavae import runs, samplers
from betavae.config import Config
from betavae.model import decoders, networks
from betavae.pictures import run_figures
from betavae.pictures.draw import pixel_levels
from betavae.pictures.report import decoder_spec
from betavae.runs import Run
from betavae.training import fit

from .conftest import synthetic_colour_data, synthetic_data

JS = Path(__file__).parent / "js"
NODE = shutil.which("node")
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_node = pytest.mark.skipif(NODE is None, reason="Node.js is not installed (CI installs it)")
needs_chromium = pytest.mark.skipif(NODE is None or CHROMIUM is None,
                                    reason="headless Chromium or Node.js is missing (CI installs Debian's chromium)")
CONFIGS = {
    "mlp": Config.of(hidden=(32, 16), latent_dim=5),
    "conv": Config.of(arch="conv", hidden=(24,), channels=(8, 6), latent_dim=5),
}


def node_decode(model, z, tmp_path):
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"layers": decoder_spec(model), "likelihood": model.likelihood.name, "z": z.tolist()}))
    out = subprocess.run([NODE, str(JS / "decode.js"), str(spec)], capture_output=True, text=True, check=True)
    return torch.tensor(json.loads(out.stdout), dtype=torch.float64)


@needs_node
@pytest.mark.parametrize("arch", CONFIGS)
@pytest.mark.parametrize("shape", [(1, 12, 12), (1, 13, 10), (3, 12, 12)])
@pytest.mark.parametrize("activation", ["relu", "silu"])
def test_node_decoder_matches_torch(arch, shape, activation, tmp_path):
    torch.manual_seed(0)
    model = networks.build(CONFIGS[arch].replace(activation=activation), shape)
    z = torch.randn(16, 5) * 2
    expected = torch.sigmoid(model.decode(z)).detach().double().flatten(1)  # C*H*W values, channel by channel
    got = node_decode(model, z, tmp_path)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


@needs_node
@pytest.mark.parametrize("likelihood", list(decoders.LIKELIHOODS))
def test_node_decodes_the_mean_image_of_each_likelihood(likelihood, tmp_path):
    """The page shows what `model.decode_mean` gives: the continuous Bernoulli's true mean, the logistic's first C
    channels, the Gaussian's clamped mean; outputs near 0 take the continuous Bernoulli's series."""
    torch.manual_seed(0)
    model = networks.build(CONFIGS["conv"].replace(likelihood=likelihood), (3, 12, 12))
    z = torch.randn(16, 5) * 2
    with torch.no_grad():
        model.decoder.up[-1].bias.sub_(model.decode(z).mean(dim=(0, 2, 3)))  # outputs around 0, small and large
    expected = model.decode_mean(z).detach().double().flatten(1)
    got = node_decode(model, z, tmp_path)
    assert got.shape == expected.shape
    assert (got - expected).abs().max().item() <= 1e-4


# the colour runs: conv models of 3-channel images, Bernoulli and the discretized logistic
RUNS = {**CONFIGS, "colour": CONFIGS["conv"], "logistic": CONFIGS["conv"].replace(likelihood="logistic")}


def data_of(run_dir: Path):
    """The synthetic data a report run of this module trained on: grey, or in colour for 3 channels."""
    return synthetic_colour_data() if Run.open(run_dir).image_shape[0] == 3 else synthetic_data()


@pytest.fixture(scope="module", params=list(RUNS))
def report_run(request, tmp_path_factory):
    config = RUNS[request.param].replace(epochs=1, batch_size=32, latent_map_size=40)
    colour = request.param in ("colour", "logistic")
    if colour:  # at beta 4 and 6 steps an epoch every latent of the colour run stays unused (KL ~0), and no slider
        config = config.replace(epochs=3, batch_size=16, beta=1.0, lr=5e-3)  # changes the canvas
    run_dir = tmp_path_factory.mktemp(request.param) / "run"
    data = synthetic_colour_data() if colour else synthetic_data()
    fit(config, run_dir, data=data, callbacks=[run_figures.TrainingFigures()], log=lambda line: None)
    return run_dir


def as_canvas(values: torch.Tensor) -> torch.Tensor:
    """Values (C, H, W) in [0, 255] as a canvas shows them: RGB per pixel, a grey channel in all three."""
    return values.expand(3, -1, -1).permute(1, 2, 0) if len(values) == 1 else values.permute(1, 2, 0)


@needs_chromium
def test_explorer_in_headless_chromium(report_run):
    """Drag the first slider with the mouse: the canvas changes and shows exactly what torch decodes."""
    result = subprocess.run([NODE, "--experimental-websocket", str(JS / "browser_check.mjs"),
                             str(report_run / "report.html")], capture_output=True, text=True, timeout=90,
                            env={"CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr
    page = json.loads(result.stdout)
    assert page["decodes"] == 1
    assert page["before"] != page["after"]
    model = runs.load(report_run)
    z = torch.tensor(page["z"], dtype=torch.float32)
    assert z[page["slider_dim"]].item() == pytest.approx(page["slider_value"], abs=1e-6)
    expected = model.decode_mean(z[None]).detach().double()[0]
    shown = torch.tensor(page["probabilities"], dtype=torch.float64)
    assert (shown - expected.flatten()).abs().max().item() <= 1e-4
    canvas = torch.tensor(page["after"], dtype=torch.float64).view(*expected.shape[1:], 3)
    assert (canvas - as_canvas((expected * 255).round())).abs().max().item() <= 1
    assert set(page["draws"]) == {"prior", "gmm", "class"}  # the "draw z" button, once per sampler
    run = Run.open(report_run)
    for kind, drawn in page["draws"].items():
        fitted = samplers.for_run(run, kind)  # the ones the report embedded, saved beside it
        mixture = fitted.mixture(None if drawn["label"] is None else int(drawn["label"]))
        expected_z = mixture.draw_with(torch.tensor(drawn["eps"]), drawn["u"])
        assert (torch.tensor(drawn["z"], dtype=torch.float64) - expected_z).abs().max().item() < 1e-4
        assert drawn["shown"] == drawn["z"] and drawn["digits_shown"] == fitted.by_label


def test_report_is_self_contained(report_run):
    page = (report_run / "report.html").read_text()
    assert "http://" not in page and "https://" not in page and "<script src" not in page
    assert 'id="explorer-data"' in page and "data:image/png;base64" in page


def test_the_report_map_is_the_figures_pca(report_run):
    """One PCA (scikit-learn's) for the report and the figures, so the two maps cannot disagree in sign."""
    import base64

    import numpy as np

    from betavae.pictures.draw import pca_2d
    from betavae.runs import Run

    payload = explorer_payload(report_run)
    decode = lambda text: np.frombuffer(base64.b64decode(text), dtype="<f4")  # noqa: E731
    means = decode(payload["points"]["means"]).reshape(-1, payload["latent_dim"])
    xy = decode(payload["points"]["xy"]).reshape(-1, 2)
    run = Run.open(report_run)
    assert np.allclose(xy, pca_2d(means, run.config.seed)(means), atol=1e-5)
    assert np.allclose(means, run.model.posterior_means(data_of(report_run).val.images[:len(means)]), atol=1e-5)


def explorer_paints(report_dir: Path, z: torch.Tensor, tmp_path: Path) -> dict:
    """What explorer.js paints, under Node.js in a stand-in page, for each latent vector and for map point 0."""
    latents = tmp_path / "z.json"
    latents.write_text(json.dumps(z.tolist()))
    result = subprocess.run([NODE, str(JS / "explorer_paints.js"), str(report_dir / "report.html"), str(latents)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@needs_node
def test_the_explorer_paints_what_python_decodes_in_grey_or_colour(report_run, tmp_path):
    """The decoded canvas is torch's decode of the same weights (RGB for 3 channels, grey for 1); the original canvas
    is the chosen image, every channel."""
    run = Run.open(report_run)
    z = torch.randn(3, run.config.latent_dim) * 2
    page = explorer_paints(run.path, z, tmp_path)
    expected = (run.model.decode_mean(z).detach().double() * 255).round()
    for painted, decoded in zip(page["decoded"], expected):
        canvas = torch.tensor(painted, dtype=torch.float64).view(*decoded.shape[1:], 4)
        assert (canvas[..., :3] - as_canvas(decoded)).abs().max().item() <= 1
        assert (canvas[..., 3] == 255).all()
    original = torch.tensor(page["original"], dtype=torch.float64).view(*run.image_shape[1:], 4)[..., :3]
    image = pixel_levels(data_of(report_run).val.images[:1])[0]
    assert torch.equal(original, as_canvas(torch.from_numpy(image).double()))


def explorer_payload(report_dir: Path) -> dict:
    page = (report_dir / "report.html").read_text()
    return json.loads(page.split('id="explorer-data">')[1].split("</script>")[0].replace("<\\/", "</"))


def test_the_explorer_payload_carries_every_channel(report_run):
    import base64

    payload = explorer_payload(report_run)
    shape = Run.open(report_run).image_shape
    assert payload["image_shape"] == list(shape)
    pixels = np.frombuffer(base64.b64decode(payload["points"]["images"]), np.uint8).reshape(-1, *shape)
    assert len(pixels) == len(payload["points"]["labels"]) == 64  # every validation image
    assert np.array_equal(pixels, pixel_levels(data_of(report_run).val.images[:len(pixels)]))
    assert (pixels[:, 0] != pixels[:, -1]).any() == (shape[0] == 3)  # colour data differ between channels
