"""Each figure command on a tiny trained run of synthetic data: files exist, have the expected size, show what they claim."""

import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from betavae import cli, runs
from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.pictures import draw, run_figures
from betavae.runs import Run
from betavae.training import fit, folder

from .conftest import synthetic_colour_data, synthetic_images

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


def test_training_decodes_the_same_fixed_noise_at_every_epoch(run_dir):
    """The samples of the last epoch are the decodings of the noise drawn once from the run's seed (fresh noise per
    epoch would make the per-epoch pictures incomparable)."""
    run = runs.Run.open(run_dir)
    noise = torch.randn(run_figures.N_SAMPLES, 3, generator=torch.Generator().manual_seed(run.config.seed + 2))
    expected = draw.sample_grid(run.model, noise, caption="epoch 2: z ~ N(0,I), Bernoulli means")
    assert np.array_equal(png(run.figure_dir / "samples" / "epoch_002.png"), np.asarray(expected.convert("L")))
    drawn = np.asarray(draw.sample_grid(run.model, noise[:6], 3, draw=True))
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
    (["interpolate", "{run}", "--images", "{right}", "{bomb}"], "guards against decompression bombs"),
    (["interpolate", "{run}", "--images", "{wrong}", "{wrong}", "--pairs", "0:1"], "give --images or --pairs"),
    (["reconstruct", "{missing}"], "does not exist"),
    (["report", "{unfinished}"], "stopped while running"),
])
def test_bad_input_is_one_clear_line(run_dir, tmp_path, capsys, argv, message):
    Image.fromarray(np.zeros((12, 12), np.uint8)).save(tmp_path / "right.png")
    Image.fromarray(np.zeros((20, 20), np.uint8)).save(tmp_path / "wrong.png")
    bomb = bytearray((tmp_path / "right.png").read_bytes())  # its header claims 40000x40000 pixels
    bomb[16:24] = (40000).to_bytes(4, "big") * 2
    bomb[29:33] = zlib.crc32(bytes(bomb[12:29])).to_bytes(4, "big")  # the IHDR chunk's checksum, so that it reads
    (tmp_path / "bomb.png").write_bytes(bytes(bomb))
    unfinished = tmp_path / "unfinished"
    unfinished.mkdir()
    (unfinished / folder.CONFIG).write_text((run_dir / folder.CONFIG).read_text())
    folder.write_status(unfinished, "running", 1, 2)
    names = dict(run=run_dir, wrong=tmp_path / "wrong.png", missing=tmp_path / "missing", unfinished=unfinished,
                 bomb=tmp_path / "bomb.png", right=tmp_path / "right.png")
    assert cli.main([a.format(**names) for a in argv]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith("betavae: error:") and message in err and "\n" not in err


# --- colour: images of 3 channels are drawn in RGB ----------------------------------------------------------------
@pytest.fixture(scope="module")
def colour_run(tmp_path_factory):
    config = Config.of(hidden=(32,), latent_dim=3, batch_size=32, epochs=1, figure_epochs=(0,), latent_map_size=40)
    return fit(config, tmp_path_factory.mktemp("colour") / "run", data=synthetic_colour_data(),
               callbacks=[run_figures.TrainingFigures()], log=lambda line: None)


def rgb(path):
    with Image.open(path) as image:
        return image.mode, np.asarray(image.convert("RGB")).astype(int)


def test_a_colour_run_draws_every_figure_in_colour(colour_run):
    """Grids, sampler grids and GIFs are RGB, and no figure of images is grey (R = G = B) throughout."""
    out = colour_run / "figures"
    grids = [*out.glob("reconstructions/*.png"), *out.glob("samples/*.png"), out / "interpolation.png",
             *out.glob("samples_*.png")]
    assert len(grids) >= 6 and {p.name for p in out.glob("samples_*.png")} == {"samples_gmm.png", "samples_class.png"}
    for path in [*grids, out / "traversal.png", out / "reconstructions.gif", out / "samples.gif",
                 out / "traversal.gif"]:
        mode, pixels = rgb(path)
        assert mode in ("RGB", "RGBA", "P"), path.name  # GIFs are palette images of colours
        assert (pixels[..., 0] != pixels[..., 1]).any() and (pixels[..., 1] != pixels[..., 2]).any(), path.name
    assert all(rgb(p)[0] == "RGB" for p in grids)
    assert (out / "latent_map_pca.png").is_file() and (colour_run / "report.html").is_file()


def test_a_colour_reconstruction_shows_each_channel_exactly(colour_run):
    run = Run.open(colour_run, data=synthetic_colour_data())
    images = run.reference_split().images[:4]
    picture = np.asarray(draw.reconstruction_grid(run.model, images))
    assert picture.shape == (cell(2), cell(4), 3)
    first = picture[PAD * SCALE: (PAD + SIZE[0]) * SCALE: SCALE, PAD * SCALE: (PAD + SIZE[1]) * SCALE: SCALE]
    assert np.array_equal(first, (images[0].permute(1, 2, 0).numpy() * 255).round())
    assert first.reshape(-1, 3).max(axis=0).tolist().count(255) < 3  # a coloured square: not white, not grey
    row2 = (2 * PAD + SIZE[0]) * SCALE
    bottom = picture[row2: row2 + SIZE[0] * SCALE: SCALE, PAD * SCALE: (PAD + SIZE[1]) * SCALE: SCALE]
    expected = draw.pixel_levels(run.model.reconstruct(images[:1]))[0].transpose(1, 2, 0)
    assert np.array_equal(bottom, expected)


def test_colour_traversals_and_samples_have_three_channels(colour_run):
    model = runs.load(colour_run)
    figure, order = draw.traversal_figure(model, torch.rand(3, *SIZE), [1.0, 2.0, 0.5], steps=4)
    shown = [axis.images[0].get_array() for axis in figure.axes]
    assert all(row.shape == (SIZE[0] + 2, 4 * (SIZE[1] + 1) + 1, 3) for row in shown)
    drawn = np.asarray(draw.sample_grid(model, torch.randn(6, 3), 3, draw=True))
    assert drawn.shape[2] == 3 and set(np.unique(drawn)) <= {0, 255}  # one Bernoulli draw per pixel and channel
    frames = draw.traversal_gif(model, torch.rand(3, *SIZE), [1.0, 2.0, 0.5], steps=3)
    assert all(frame.mode == "RGB" for frame in frames)


def test_two_colour_files_are_read_in_colour(colour_run, tmp_path):
    run = Run.open(colour_run, data=synthetic_colour_data())
    pictures = np.random.default_rng(0).integers(0, 256, (2, *SIZE, 3), dtype=np.uint8)
    for i in range(2):
        Image.fromarray(pictures[i]).save(tmp_path / f"{i}.png")
    image = run_figures.image_file(run, tmp_path / "0.png")
    assert image.shape == (3, *SIZE) and torch.equal(image, torch.from_numpy(pictures[0]).permute(2, 0, 1) / 255)
    path = run_figures.interpolate(run, files=[str(tmp_path / "0.png"), str(tmp_path / "1.png")], steps=3)
    assert rgb(path)[0] == "RGB"


def test_images_of_other_channel_counts_are_refused_in_one_line():
    with pytest.raises(BetaVAEError, match="images with 2 channels cannot be shown; pictures take 1 .grey. or 3"):
        draw.grid(torch.rand(4, 2, *SIZE), ncol=2)
