"""Data sets with ground-truth factors through one interface: dSprites, colour-dSprites and noisy-dSprites, and what
asks them (the registry, splits, pairs, fingerprints, `betavae disentanglement`, help texts)."""

import hashlib
import json

import numpy as np
import pytest
import torch

from betavae import cli
from betavae.api import disentangle
from betavae.config import Config
from betavae.data import Data, PackedImages, Split, dsprites, fingerprint, registry
from betavae.data.dsprites_variants import ColourDSprites, NoisyDSprites, uniform
from betavae.data.packed import PaintedSprites
from betavae.errors import BetaVAEError
from betavae.evaluation import factors
from betavae.training import fit

TRUTHS = {name: entry.truth for name, entry in registry.KNOWN.items() if entry.has_factors}
MADE_HERE = {name: truth for name, truth in TRUTHS.items() if "dsprites" in name}  # the others need the user's files
SOME = np.random.default_rng(0).choice(dsprites.N_IMAGES, 64, replace=False)


def packed_sprites(index: np.ndarray) -> PackedImages:
    """dSprites' sprites of these grid indices, bit-packed as the grid keeps them."""
    images = dsprites.render(dsprites.index_to_factors(index))
    return PackedImages(np.packbits(images.flatten(1).numpy().astype(np.uint8), axis=1), (1, 64, 64))


def test_the_registry_knows_the_ground_truth_sets_and_no_other():
    assert list(MADE_HERE) == ["dsprites", "colour-dsprites", "noisy-dsprites"]
    assert list(TRUTHS) == [*MADE_HERE, "shapes3d", "mpi3d-toy", "mpi3d-realistic", "mpi3d-real", "smallnorb", "cars3d"]
    assert not registry.lookup("mnist").has_factors


@pytest.mark.parametrize("name", list(MADE_HERE))
def test_every_ground_truth_set_answers_the_interface(name):
    truth = TRUTHS[name]
    assert truth.factor_names == ("shape", "scale", "orientation", "pos_x", "pos_y")
    assert truth.factor_sizes == (3, 6, 40, 32, 32) and truth.num_images == 737_280
    levels = truth.factors_of(SOME)
    assert np.array_equal(truth.index_of(levels), SOME)
    assert truth.factors_of(np.array([1]))[0].tolist() == [0, 0, 0, 0, 1]  # the last factor varies fastest
    drawn = truth.sample_factors(500, np.random.RandomState(0))
    assert drawn.shape == (500, 5) and (drawn >= 0).all() and (drawn < np.array(truth.factor_sizes)).all()
    images = truth.images(levels[:8])
    assert images.shape == (8, *truth.image_shape) and images.dtype == torch.float32
    assert 0 <= images.min() and images.max() <= 1
    assert truth.traversal_image().shape == truth.image_shape
    parts = truth.split_indices(val_size=100)
    assert sorted(len(p) for p in parts.values()) == [100, 10_000, 737_280 - 10_100]
    pairs = registry.factor_pairs(name, 100, "test")
    assert pairs.sizes.tolist() == list(truth.factor_sizes) and np.array_equal(pairs.grid_index, parts["train"])


def test_colour_dsprites_is_each_sprite_in_one_colour_uniform_in_half_to_one():
    levels = dsprites.index_to_factors(SOME)
    sprite = dsprites.render(levels).bool().expand(-1, 3, -1, -1)
    painted = ColourDSprites().images(levels)
    assert (painted[~sprite] == 0).all()  # the background stays black
    colours = painted.amax(dim=(2, 3))  # (N, 3): each image's colour
    assert torch.equal(painted, sprite.float() * colours[:, :, None, None])  # one colour per image and channel
    many = 0.5 + 0.5 * uniform(torch.arange(300_000), 0x0C010A12)
    assert 0.5 <= float(many.min()) and float(many.max()) < 1.0
    assert abs(float(many.mean()) - 0.75) < 0.002 and abs(float(many.std()) - 0.5 / 12 ** 0.5) < 0.002
    assert len(torch.unique(colours)) == colours.numel()  # a fresh draw per image and channel


def test_noisy_dsprites_is_each_white_sprite_on_uniform_noise():
    levels = dsprites.index_to_factors(SOME)
    sprite = dsprites.render(levels).bool().expand(-1, 3, -1, -1)
    painted = NoisyDSprites().images(levels)
    assert (painted[sprite] == 1).all()
    noise = painted[~sprite]
    assert 0 <= float(noise.min()) and float(noise.max()) < 1
    assert abs(float(noise.mean()) - 0.5) < 0.005 and abs(float(noise.var()) - 1 / 12) < 0.002
    background = ~sprite[:, 0]
    red, green = painted[:, 0][background], painted[:, 1][background]
    assert abs(float(torch.corrcoef(torch.stack([red, green]))[0, 1])) < 0.01  # channels drawn apart


@pytest.mark.parametrize("truth", [ColourDSprites(), NoisyDSprites()], ids=lambda t: t.name)
def test_an_image_is_a_function_of_its_grid_index_whatever_the_batch(truth):
    expected = truth.images(dsprites.index_to_factors(SOME))
    stored = PaintedSprites(packed_sprites(SOME), torch.from_numpy(SOME), truth, 3)
    assert torch.equal(stored[:], expected)
    picked = torch.tensor([40, 3, 17])
    assert torch.equal(stored[picked], expected[picked]) and torch.equal(stored.take(picked)[:], expected[picked])
    assert torch.equal(stored[5], expected[5])
    assert torch.equal(torch.cat(list(stored.split(10))), expected)
    stored.most_at_once = 7  # painted a few at a time: the same images
    assert torch.equal(stored[:], expected)
    assert stored.shape == (64, 3, 64, 64) and stored.is_floating_point()


def one_sprite_grid(data_dir=None, log=None) -> np.ndarray:
    """Every grid row the same sprite (that of index 0), without the memory of a grid: a stand-in for the cache."""
    return np.broadcast_to(packed_sprites(np.array([0])).rows.numpy()[0], (dsprites.N_IMAGES, 512))


def test_a_split_of_a_variant_paints_the_grids_sprites_at_their_own_indices(monkeypatch):
    monkeypatch.setattr(dsprites, "packed_images", one_sprite_grid)
    colour = registry.load_split("colour-dsprites", None, 100, "val")
    index = ColourDSprites().split_indices(100)["val"]
    assert colour.images.shape == (100, 3, 64, 64)
    assert torch.equal(colour.labels, torch.from_numpy(dsprites.index_to_factors(index)[:, 0]))
    sprite = dsprites.render(np.zeros((1, 5), np.int64)).bool().expand(100, 1, -1, -1)
    assert torch.equal(colour.images[:], ColourDSprites().paint(sprite, torch.from_numpy(index)))
    noisy = registry.load_split("noisy-dsprites", None, 100, "val")
    digest = lambda split: fingerprint(Data("d", split, split, split))  # noqa: E731
    assert digest(colour) == digest(registry.load_split("colour-dsprites", None, 100, "val"))
    assert digest(colour) != digest(noisy)  # the same sprites, painted otherwise: other data
    assert registry.fetch("noisy-dsprites").startswith("noisy-dsprites: 737,280 colour images of 64x64")


def test_a_dsprites_fingerprint_is_what_it_was_so_old_runs_resume(monkeypatch):
    rows = packed_sprites(SOME[:10])
    split = Split(rows, torch.arange(10))
    old = hashlib.sha256()  # the fingerprint before ground truth had an interface: rows and labels, per split
    for _ in range(3):
        for array in (rows.rows, split.labels):
            old.update(f"{tuple(array.shape)} {array.dtype}".encode())
            old.update(array.contiguous().numpy().data)
    assert fingerprint(Data("dsprites", split, split, split)) == old.hexdigest()


def test_data_without_factors_is_refused_naming_those_with(tmp_path):
    with pytest.raises(BetaVAEError, match="mnist has no ground-truth factors; train with --dataset dsprites, "
                                           "colour-dsprites, noisy-dsprites, shapes3d, .* or cars3d"):
        registry.ground_truth("mnist", "disentanglement scores a run against ground-truth factors")


def test_help_texts_list_every_data_set_of_the_registry(capsys):
    for command in (["train", "--help"], ["fetch", "--help"], ["disentanglement", "--help"]):
        with pytest.raises(SystemExit):
            cli.main(command)
        text = " ".join(capsys.readouterr().out.split()).replace("- ", "-")
        wanted = registry.KNOWN if command[0] != "disentanglement" else TRUTHS
        assert all(name in text for name in wanted), (command, text)


def tiny_colour_dsprites(n: int = 64) -> Data:
    index = np.sort(np.random.default_rng(1).choice(dsprites.N_IMAGES, 3 * n, replace=False))
    stored = PaintedSprites(packed_sprites(index), torch.from_numpy(index), ColourDSprites(), 3)
    shapes = torch.from_numpy(dsprites.index_to_factors(index)[:, 0])
    part = lambda a, b: Split(stored.take(torch.arange(a, b)), shapes[a:b])  # noqa: E731
    return Data("colour-dsprites", part(0, n), part(n, 2 * n), part(2 * n, 3 * n))


def test_a_colour_dsprites_run_trains_and_is_scored_like_a_dsprites_run(tmp_path, monkeypatch):
    config = Config.of(dataset="colour-dsprites", hidden=(16,), latent_dim=4, batch_size=32, epochs=1)
    run = fit(config, tmp_path / "c", data=tiny_colour_dsprites(), log=lambda line: None)
    grid = dsprites.index_to_factors(np.arange(dsprites.N_IMAGES))
    fake = np.random.default_rng(0).normal(scale=0.01, size=(dsprites.N_IMAGES, 4))
    fake[:, 2] = grid[:, 0]  # z2 carries the shape, nothing else carries anything
    monkeypatch.setattr(factors, "grid_codes", lambda model, stored: fake)
    monkeypatch.setattr(dsprites, "packed_images", one_sprite_grid)
    traversed = []
    monkeypatch.setattr(ColourDSprites, "traversal_image", lambda self: traversed.append(1) or torch.zeros(3, 64, 64))
    small = dict(beta_vae=dict(num_train=50, num_eval=50), factor_vae=dict(num_train=50, num_eval=50,
                 num_variance_estimate=500), mig=dict(num_train=1000), dci=dict(num_train=200, num_test=100),
                 sap=dict(num_train=200, num_test=100))
    result = disentangle(run, sizes=small, log=lambda line: None)
    stored = json.loads((run / factors.RESULT).read_text())
    assert stored["factors"] == list(dsprites.FACTORS)
    information = np.array(stored["details"]["mig"]["normalized_mutual_information"])
    assert information[2, 0] > 0.8 and information[[0, 1, 3]].max() < 0.2
    assert result["scores"] == stored["scores"] and traversed == [1]  # the figure swept the data set's own image
    assert (run / "figures" / "traversal_factors.png").stat().st_size > 1000
