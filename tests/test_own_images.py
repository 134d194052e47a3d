"""The user's own images in colour and at any size: npz layouts, folders of PNG, JPEG and WebP, --image-size and its
cache, and a colour folder trained end to end."""

import numpy as np
import pytest
import torch
from PIL import Image

from betavae import cli
from betavae.config import Config, preset
from betavae.data import images, registry
from betavae.data.dataset import Data, Split
from betavae.errors import BetaVAEError
from betavae.model.networks import build
from betavae.runs import Run

from .conftest import within

COLOURS = np.array([[220, 30, 30], [30, 200, 40], [40, 50, 210]], np.uint8)  # one per class: red, green, blue


def coloured(n: int, height: int, width: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """n RGB pictures (n, H, W, 3) uint8, each a square of its class's colour on a dim noisy background, and labels."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % len(COLOURS)
    pictures = rng.integers(0, 40, (n, height, width, 3)).astype(np.uint8)
    for picture, label in zip(pictures, labels):
        top, left = rng.integers(0, height // 2), rng.integers(0, width // 2)
        picture[top:top + height // 2, left:left + width // 2] = COLOURS[label]
    return pictures, labels


def all_images(raw) -> np.ndarray:
    return np.concatenate([raw.train_images, raw.test_images])


def quiet(line: str) -> None:
    pass


# --- npz layouts ----------------------------------------------------------------------------------------------------
def test_colour_npz_channels_last_and_first_read_alike(tmp_path):
    pictures, labels = coloured(20, 6, 10)
    np.savez(tmp_path / "last.npz", images=pictures, labels=labels)
    np.savez(tmp_path / "first.npz", images=pictures.transpose(0, 3, 1, 2).astype(np.float32) / 255, labels=labels)
    last, first = images.read_npz(tmp_path / "last.npz"), images.read_npz(tmp_path / "first.npz")
    assert last.train_images.shape == (18, 3, 6, 10) and last.train_images.dtype == np.uint8
    np.testing.assert_array_equal(last.train_images, pictures[:18].transpose(0, 3, 1, 2))
    np.testing.assert_array_equal(first.train_images, last.train_images)
    np.testing.assert_array_equal(first.test_labels, labels[18:])


def test_ambiguous_layouts_follow_the_rule_and_rgba_is_composited(tmp_path):
    square = np.arange(20 * 3 * 5 * 3, dtype=np.uint8).reshape(20, 3, 5, 3)  # last axis 3: channels-last
    assert images.to_uint8(square, "x").shape == (20, 3, 3, 5)
    assert images.to_uint8(np.zeros((20, 3, 5, 7), np.uint8), "x").shape == (20, 3, 5, 7)  # channels-first
    rgba = np.zeros((4, 2, 2, 4), np.uint8)
    rgba[..., :3], rgba[..., 3] = 200, [[255, 0], [51, 255]]
    notes = []
    rgb = images.to_uint8(rgba, "x.npz", notes.append)
    assert rgb.shape == (4, 3, 2, 2) and rgb[0, :, 0, 0].tolist() == [200] * 3
    assert rgb[0, 0].tolist() == [[200, 0], [40, 200]] and "composited over black" in notes[0]
    with pytest.raises(BetaVAEError, match=r"\(N,H,W\), \(N,H,W,C\) or \(N,C,H,W\).*got \(20, 2, 5, 7\)"):
        images.to_uint8(np.zeros((20, 2, 5, 7), np.uint8), "x")


# --- folders --------------------------------------------------------------------------------------------------------
def test_colour_folders_of_jpeg_webp_and_png_with_classes(tmp_path):
    pictures, labels = coloured(30, 12, 12)
    suffixes = {0: ".jpg", 1: ".webp", 2: ".PNG"}
    for i, (picture, label) in enumerate(zip(pictures, labels)):
        folder = tmp_path / f"class{label}"
        folder.mkdir(exist_ok=True)
        Image.fromarray(picture).save(folder / f"{i}{suffixes[label]}", quality=95, lossless=True)
    raw = images.read_folder(tmp_path, log=quiet)
    read, read_labels = all_images(raw), np.concatenate([raw.train_labels, raw.test_labels])
    assert read.shape == (30, 3, 12, 12) and sorted(np.bincount(read_labels)) == [10, 10, 10]
    files = [int(path.stem) for _, path in images.image_files(tmp_path)]  # class by class, then by name
    originals = pictures[files][np.random.default_rng(0).permutation(30)]  # in the reader's fixed shuffle
    originals = originals.transpose(0, 3, 1, 2).astype(int)
    lossless = read_labels != 0  # WebP saved lossless and PNG: exact; JPEG: each picture's mean colour close
    np.testing.assert_array_equal(read[lossless], originals[lossless])
    assert np.abs(read[~lossless].mean((2, 3)) - originals[~lossless].mean((2, 3))).max() < 4


def test_grey_images_in_a_colour_folder_become_rgb_with_one_note(tmp_path):
    pictures, _ = coloured(3, 8, 8)
    grey = np.arange(64, dtype=np.uint8).reshape(8, 8) * 4
    for i, picture in enumerate([*pictures, grey, grey]):
        Image.fromarray(picture).save(tmp_path / f"{i}.png")
    notes = []
    read = all_images(images.read_folder(tmp_path, log=notes.append))
    assert read.shape == (5, 3, 8, 8) and notes == [f"betavae: {tmp_path}: 2 grey images converted to RGB (the "
                                                    "others have colour)"]
    greys = [image for image in read if (image == image[:1]).all()]
    assert len(greys) == 2 and all((image[0] == grey).all() for image in greys)
    for i in range(3):  # a folder that is all grey stays one channel
        Image.fromarray(grey).save(tmp_path / f"{i}.png")
    assert all_images(images.read_folder(tmp_path, log=quiet)).shape == (5, 1, 8, 8)


def test_mixed_sizes_are_refused_then_cropped_and_resized(tmp_path):
    wide = np.full((12, 16), 255, np.uint8)
    wide[:, 2:14] = 0  # the centre square is black: a center crop drops the white sides
    blocks = np.kron(np.arange(64, dtype=np.uint8).reshape(8, 8) * 3, np.ones((2, 2), np.uint8))  # 16x16 of 2x2 blocks
    blocks[::2, ::2] += 2  # one pixel of each block brighter: its area mean is the block's + 0.5
    Image.fromarray(blocks).save(tmp_path / "a.png")
    Image.fromarray(wide).save(tmp_path / "b.png")
    with pytest.raises(BetaVAEError, match=r"b\.png is 16x12, but .*a\.png is 16x16; give --image-size S"):
        images.read_folder(tmp_path)
    read = all_images(images.read_folder(tmp_path, image_size=8))
    assert read.shape == (2, 1, 8, 8)
    small_blocks, cropped = (read[0, 0], read[1, 0]) if read[1].max() == 0 else (read[1, 0], read[0, 0])
    assert (cropped == 0).all()
    area_means = blocks.reshape(8, 2, 8, 2).astype(float).mean((1, 3))
    assert np.abs(small_blocks - area_means).max() <= 0.5  # each target pixel is its 2x2 area's mean
    up = images.fit_to_size(np.dstack([wide] * 3), 24)
    assert up.shape == (24, 24, 3) and (up == 0).all()  # upscaled too, after the crop


def test_npz_resized_by_image_size(tmp_path):
    pictures, _ = coloured(10, 9, 15)
    np.savez(tmp_path / "x.npz", images=pictures)
    raw = images.read_npz(tmp_path / "x.npz", image_size=6)
    assert raw.train_images.shape == (9, 3, 6, 6)
    np.testing.assert_array_equal(raw.train_images[0].transpose(1, 2, 0), images.fit_to_size(pictures[0], 6))


# --- the cache ------------------------------------------------------------------------------------------------------
def test_the_cache_is_keyed_by_size_and_by_the_files(tmp_path, monkeypatch):
    pictures, _ = coloured(12, 20, 20)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, picture in enumerate(pictures):
        Image.fromarray(picture).save(folder / f"{i}.jpg")
    small = registry.load(str(folder), val_size=2, image_size=8)
    large = registry.load(str(folder), val_size=2, image_size=16)
    assert small.image_shape == (3, 8, 8) and large.image_shape == (3, 16, 16)
    stored = sorted(p.name.split("-")[-1] for p in (tmp_path / "cache" / "betavae" / "images").iterdir())
    assert stored == ["16", "8"]  # a folder of .npy arrays per entry

    def no_decoding(*args, **kwargs):
        raise AssertionError("the images were decoded again")

    monkeypatch.setattr(images, "read_folder", no_decoding)
    again = registry.load(str(folder), val_size=2, image_size=8)
    assert again.image_shape == (3, 8, 8) and (again.train.images == small.train.images).all()
    Image.fromarray(pictures[0][::-1]).save(folder / "0.jpg")  # a changed file is read again
    with pytest.raises(AssertionError, match="decoded again"):
        registry.load(str(folder), val_size=2, image_size=8)


def test_a_known_data_set_is_not_resized(monkeypatch):
    tiny = Data("tiny", *(Split.from_numpy(np.zeros((4, 5, 5), np.uint8), np.zeros(4)) for _ in range(3)))
    monkeypatch.setitem(registry.KNOWN, "tiny", registry.Dataset("tiny", lambda d: "", lambda d, v: tiny))
    assert registry.load("tiny", image_size=0) is tiny
    with pytest.raises(BetaVAEError, match="--image-size 8 resizes your own images only, and tiny is 5x5"):
        registry.load("tiny", image_size=8)


# --- configuration, model, end to end -------------------------------------------------------------------------------
def test_image_size_is_checked_and_conv64_builds_for_colour_64x64():
    for bad in (3, 1025, -1):
        with pytest.raises(BetaVAEError, match="image_size must be 0 .* from 4 to 1024"):
            Config(image_size=bad)
    config = preset("conv64")
    assert (config.image_size, config.arch, config.channels, config.latent_dim) == (64, "conv", (), 10)
    model = build(config, (3, 64, 64))  # no channels given: Burgess et al.'s four of 32, chosen by the size
    assert [m.out_channels for m in model.encoder.modules() if isinstance(m, torch.nn.Conv2d)] == [32] * 4
    mean, _ = model.encode(torch.full((2, 3, 64, 64), 0.5))
    assert mean.shape == (2, 10) and model.decode(mean).shape == (2, 3, 64, 64)


def test_train_on_a_folder_of_colour_jpegs_draws_in_colour(tmp_path, capsys):
    pictures, labels = coloured(48, 20, 28)
    for i, (picture, label) in enumerate(zip(pictures, labels)):
        folder = tmp_path / "photos" / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(picture).save(folder / f"{i}.jpg", quality=90)
    argv = ["train", "--dataset", str(tmp_path / "photos"), "--image-size", "16", "--epochs", "1", "--arch", "mlp",
            "--hidden", "16", "--latent-dim", "2", "--batch-size", "16", "--val-size", "8", "--latent-map-size", "20",
            "--figure-epochs", "0", "--runs", str(tmp_path / "runs"), "--name", "colour"]
    assert cli.main(argv) == 0, capsys.readouterr().err
    run = tmp_path / "runs" / "colour"
    assert (run / "report.html").is_file()
    opened = Run.open(run)
    assert opened.image_shape == (3, 16, 16) and opened.config.image_size == 16
    figures = [*(run / "figures").glob("reconstructions/*.png"), *(run / "figures").glob("samples/*.png"),
               run / "figures" / "traversal.png"]
    assert len(figures) >= 5
    for path in figures:
        with Image.open(path) as picture:
            assert picture.mode in ("RGB", "RGBA"), path.name
            pixels = np.asarray(picture).astype(int)
        assert (pixels[..., 0] != pixels[..., 1]).any() and (pixels[..., 1] != pixels[..., 2]).any(), path.name


def test_binary_pixels_on_colour_images_are_refused_in_one_line(tmp_path):
    """A 0/1 draw per channel would make up colours: --pixels binary on colour data is refused before training."""
    from betavae import data as datalib
    datalib.check_pixels("binary", (1, 28, 28), "mnist")  # grey: fine
    datalib.check_pixels("grey", (3, 64, 64), "colour-dsprites")
    with pytest.raises(BetaVAEError, match="--pixels grey"):
        datalib.check_pixels("binary", (3, 64, 64), "colour-dsprites")


def test_class_folders_keep_their_sorted_position_and_hidden_folders_are_not_classes(tmp_path):
    """An empty class folder keeps its label (folders 0, 1, 2 label 0, 1, 2 although 0 is empty), and a hidden folder
    (.thumbnails) is not class 0; both are said."""
    for name in ("0", "1", "2", ".thumbnails"):
        (tmp_path / "f" / name).mkdir(parents=True)
    for name in ("1", "2", ".thumbnails"):
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "f" / name / "a.png")
    (tmp_path / "f" / "1" / "more").mkdir()  # a folder inside a class: not read, and said
    said = []
    labels = sorted({label for label, _ in images.image_files(tmp_path / "f", said.append)})
    assert labels == [1, 2] and any("folders inside class folders are not read: 1/more" in line for line in said)
    assert any(".thumbnails" in line for line in said) and any("no images" in line and "0" in line for line in said)


def test_special_files_with_an_image_name_and_links_above_the_folder_are_left_out_and_said(tmp_path):
    """A FIFO named *.png would block the read and a dangling link would fail it; a link `up -> ..` would make the
    folder a class of itself; macOS's ._x.png is metadata. Each is left out, and the log names it."""
    import os
    for name in ("cats", "dogs"):
        (tmp_path / "f" / name).mkdir(parents=True)
        Image.fromarray(np.full((8, 8), 100, np.uint8)).save(tmp_path / "f" / name / "a.png")
    os.mkfifo(tmp_path / "f" / "cats" / "pipe.png")
    (tmp_path / "f" / "dogs" / "gone.png").symlink_to(tmp_path / "nowhere.png")
    (tmp_path / "f" / "up").symlink_to("..")
    (tmp_path / "f" / "self").symlink_to(".")
    (tmp_path / "f" / "dogs" / "._a.png").write_bytes(b"\x00\x05\x16\x07 macOS metadata, not a PNG")
    said = []
    with within(60):
        files = images.image_files(tmp_path / "f", said.append)
        assert len(images.read_folder(tmp_path / "f", log=said.append).train_images) >= 1
    assert [(label, path.name) for label, path in files] == [(0, "a.png"), (1, "a.png")]
    assert any("pipe.png" in line and "gone.png" in line and "not regular" in line for line in said), said
    assert any("self" in line and "up" in line and "not classes" in line for line in said), said
    assert any("hidden files" in line and "._a.png" in line for line in said), said


def test_a_photo_is_read_upright_by_its_exif_orientation(tmp_path):
    """A camera stores a portrait photo sideways with an EXIF orientation; read as stored, it would lie on its side."""
    pixels = np.zeros((20, 40, 3), np.uint8)
    pixels[:, :20] = (250, 10, 10)  # the stored left half red, the right half black
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: turn 90 degrees clockwise to show
    Image.fromarray(pixels).save(tmp_path / "portrait.jpg", exif=exif, quality=95)
    upright = images.read_image(tmp_path / "portrait.jpg")
    assert upright.shape == (40, 20, 3)
    assert upright[:20, :, 0].mean() > 200 and upright[20:, :, 0].mean() < 50  # the red half now on top


@pytest.mark.parametrize("colour", [False, True])
def test_images_resized_to_the_smallest_size_come_back_from_the_cache_as_they_went_in(tmp_path, colour):
    """The cache is (N, C, H, W): 4x4 grey images, (N, 1, 4, 4), must not be read back by the layout rule of a user's
    arrays (last axis 1, 3 or 4: channels), which made them 1x4 RGBA."""
    folder = tmp_path / "pictures"
    folder.mkdir()
    for i in range(12):
        pixels = np.full((28, 28, 3), (20 * i, 5, 200), np.uint8) if colour else np.full((28, 28), 20 * i, np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")
    for _ in range(2):  # written to the cache, then read from it
        data = registry.load(str(folder), val_size=2, image_size=4)
        assert data.image_shape == ((3 if colour else 1), 4, 4)
