"""Each figure command on a tiny trained run of synthetic data: files exist, have the expected size, show what they claim."""

import numpy as np
import pytest
import torch
from PIL import Image

from betavae import cli, runs
from betavae.config import Config
from betavae.pictures import draw, run_figures
from betavae.training import fit, folder

from .conftest import synthetic_images

SIZE = (12, 12)
SCALE, PAD = draw.SCALE, draw.PAD


def cell(n):  # pixel extent of n tiles of SIZE in a grid
    return (n * (SIZE[1] + PAD) + PAD) * SCALE


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("figures")
    x, y = synthetic_images(300, SIZE)
    np.savez(root / "data.npz", images=x, labels=y)
    config = Config.of(dataset=str(root / "data.npz"), val_size=60, hidden=(32,), latent_dim=3, batch_size=32,
                    epochs=2, beta=1.0, figure_epochs=(0, 1), latent_map_epochs=(0, 1), latent_map_size=50)
    return fit(config, root / "run", callbacks=[run_figures.TrainingFigures()], log=lambda line: None)


def png(path):
    with Image.open(path) as image:
        return np.asarray(image.convert("L"))


def test_training_draws_every_figure(run_dir):
    out = (run_dir / 'figures')
    assert sorted(p.name for p in (out / "reconstructions").glob("*.png")) == \
        ["epoch_000.png", "epoch_001.png", "epoch_002.png"]
    for name in ("reconstructions.gif", "samples.gif", "interpolation.png", "traversal.png", "traversal.gif",
                 "curves.png", "latent_map_pca.png"):
        assert (out / name).stat().st_size > 0, name
    assert (run_dir / "report.html").is_file()
    with Image.open(out / "reconstructions.gif") as gif:
        assert gif.n_frames == 3
    means, labels = run_figures.read_latents(run_dir)
    assert sorted(means) == [0, 1, 2] and means[2].shape == (50, 3) and labels.shape == (50,)


def test_reconstruction_grid_shows_truth_over_reconstruction(run_dir):
    model = runs.load(run_dir)
    images = torch.rand(5, 1, *SIZE)
    picture = np.asarray(draw.reconstruction_grid(model, images))
    assert picture.shape == (cell(2), cell(5))
    top = picture[PAD * SCALE: (PAD + SIZE[0]) * SCALE: SCALE, PAD * SCALE: (PAD + SIZE[1]) * SCALE: SCALE]
    assert np.abs(top.astype(int) - (images[0, 0].numpy() * 255).round()).max() <= 1
    row2 = (2 * PAD + SIZE[0]) * SCALE
    bottom = picture[row2: row2 + SIZE[0] * SCALE: SCALE, PAD * SCALE: (PAD + SIZE[1]) * SCALE: SCALE]
    expected = (model.reconstruct(images[:1])[0, 0].numpy() * 255).round()
    assert np.abs(bottom.astype(int) - expected).max() <= 1


def test_interpolation_endpoints_are_the_decoded_means(run_dir):
    model = runs.load(run_dir)
    a, b = torch.rand(2, 1, *SIZE)
    path = draw.interpolation(model, a, b, steps=16)
    assert path.shape == (16, 1, *SIZE)
    means = model.encode(torch.stack([a, b]))[0]
    ends = torch.sigmoid(model.decode(means))
    assert torch.allclose(path[0], ends[0], atol=1e-6) and torch.allclose(path[-1], ends[1], atol=1e-6)
    spherical = draw.interpolation(model, a, b, steps=16, method="spherical")
    assert torch.allclose(spherical[0], ends[0], atol=1e-5) and torch.allclose(spherical[-1], ends[1], atol=1e-5)


def test_traversal_rows_are_ordered_by_kl(run_dir):
    model = runs.load(run_dir)
    kl = [0.5, 3.0, 1.0]
    figure, order = draw.traversal_figure(model, torch.rand(1, *SIZE), kl, steps=5)
    assert order == [1, 2, 0]
    labels = [axis.texts[0].get_text() for axis in figure.axes]
    assert labels == ["KL 3.00", "KL 1.00", "KL 0.50"]
    values = torch.linspace(-3, 3, 5)
    sweep = draw.traversal(model, torch.rand(1, *SIZE), [1], values)
    assert sweep.shape == (5, 1, *SIZE) and not torch.allclose(sweep[0], sweep[-1])


def test_samples_use_fixed_noise(run_dir):
    model = runs.load(run_dir)
    noise = torch.randn(6, 3)
    assert np.array_equal(np.asarray(draw.sample_grid(model, noise, 3)), np.asarray(draw.sample_grid(model, noise, 3)))
    drawn = np.asarray(draw.sample_grid(model, noise, 3, draw=True))
    assert set(np.unique(drawn)) <= {0, 255}


@pytest.mark.parametrize("argv, produced", [
    (["reconstruct", "--indices", "0,1,2"], "reconstruction.png"),
    (["sample", "--n", "12"], "samples.png"),
    (["interpolate", "--pairs", "0:1", "--steps", "7"], "interpolation_linear.png"),
    (["traverse", "--index", "2"], "traversal.png"),
    (["latent-map", "--method", "tsne"], "latent_map_tsne.png"),
    (["report"], "../report.html"),
])
def test_commands(run_dir, argv, produced, capsys):
    assert cli.main([argv[0], str(run_dir), *argv[1:]]) == 0
    path = (run_dir / 'figures') / produced
    assert capsys.readouterr().out.strip() == str(run_dir / "figures" / produced).replace("figures/../", "")
    assert path.stat().st_size > 0


def test_command_sizes(run_dir):
    cli.main(["interpolate", str(run_dir), "--pairs", "0:1,2:3", "--steps", "7"])
    assert png((run_dir / 'figures') / "interpolation_linear.png").shape == (cell(2) + 14, cell(7))
    cli.main(["sample", str(run_dir), "--n", "12"])
    assert png((run_dir / 'figures') / "samples.png").shape == (cell(2) + 14, cell(8))


def test_interpolate_two_files(run_dir, tmp_path):
    x, _ = synthetic_images(2, SIZE)
    for i in range(2):
        Image.fromarray(x[i]).save(tmp_path / f"{i}.png")
    assert cli.main(["interpolate", str(run_dir), "--images", str(tmp_path / "0.png"), str(tmp_path / "1.png")]) == 0


@pytest.mark.parametrize("argv, message", [
    (["traverse", "{run}", "--index", "5000"], "image index 5000 is out of range"),
    (["interpolate", "{run}", "--pairs", "0:999"], "out of range"),
    (["interpolate", "{run}", "--images", "{wrong}", "{wrong}"], "but this model takes 12x12 images"),
    (["interpolate", "{run}", "--images", "{missing}", "{missing}"], "does not exist"),
    (["reconstruct", "{missing}"], "does not exist"),
    (["report", "{unfinished}"], "is running"),
])
def test_bad_input_is_one_clear_line(run_dir, tmp_path, capsys, argv, message):
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "wrong.png")
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / folder.CONFIG).write_text((run_dir / folder.CONFIG).read_text())
    folder.write_status(unfinished, "running", 1, 2)
    names = dict(run=run_dir, wrong=tmp_path / "wrong.png", missing=tmp_path / "missing", unfinished=unfinished)
    assert cli.main([a.format(**names) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("betavae: error:") and message in err and "\n" not in err
