import numpy as np
import pytest
import torch

from betavae.data import PackedImages, dsprites
from betavae.errors import BetaVAEError


def test_grid_and_index_round_trip():
    assert int(np.prod(dsprites.SIZES)) == 737_280
    values = dsprites.factor_values()
    assert values[2][0] == 0 and np.isclose(values[2][-1], 2 * np.pi) and len(values[2]) == 40
    index = np.array([0, 1, 32, 737_279, 123_456])
    assert np.array_equal(dsprites.factors_to_index(dsprites.index_to_factors(index)), index)
    assert dsprites.index_to_factors(np.array([1]))[0].tolist() == [0, 0, 0, 0, 1]  # pos_y varies fastest


def test_every_extreme_shape_stays_inside_the_frame():
    corners = [[s, 5, o, x, y] for s in range(3) for o in range(0, 40, 3) for x in (0, 31) for y in (0, 31)]
    images = dsprites.render(np.array(corners))
    border = torch.cat([images[..., 0, :], images[..., -1, :], images[..., :, 0], images[..., :, -1]], dim=-1)
    assert border.sum() == 0
    assert (images.flatten(1).sum(1) > 20).all()


def test_factors_change_the_image_as_they_should():
    base = np.array([[1, 5, 5, 16, 16]])
    area = lambda f: float(dsprites.render(np.array(f)).sum())  # noqa: E731
    assert area([[1, 0, 5, 16, 16]]) < area(base)  # smaller scale, smaller area
    assert area([[0, 5, 0, 16, 16]]) > area([[1, 5, 0, 16, 16]])  # square covers more than the ellipse
    moved = dsprites.render(np.array([[1, 5, 5, 20, 16]]))[0, 0]
    still = dsprites.render(base)[0, 0]
    shift = torch.nonzero(moved).float().mean(0) - torch.nonzero(still).float().mean(0)
    assert shift[1] > 3 and abs(shift[0]) < 0.5  # pos_x moves columns only
    turned = dsprites.render(np.array([[1, 5, 10, 16, 16]]))[0, 0]
    assert not torch.equal(turned, still)
    assert set(dsprites.render(base).unique().tolist()) <= {0.0, 1.0}


def test_a_batch_of_mixed_shapes_renders_each_image_as_it_renders_alone():
    # render() groups a batch by shape; each image must come back in its own row, as rendered on its own
    factors = dsprites.index_to_factors(np.random.default_rng(0).choice(737_280, 24, replace=False))
    assert len(set(factors[:, 0])) == 3
    alone = torch.cat([dsprites.render(factors[i:i + 1]) for i in range(len(factors))])
    assert torch.equal(dsprites.render(factors), alone)


def test_bit_packing_round_trips_and_splits_are_disjoint():
    factors = dsprites.index_to_factors(np.arange(0, 737_280, 7919))
    images = dsprites.render(factors)
    packed = np.packbits(images.flatten(1).numpy().astype(np.uint8), axis=1)
    assert packed.shape == (len(factors), 512)
    unpacked = PackedImages(packed, (1, 64, 64))[:]
    assert unpacked.dtype == torch.bool and torch.equal(unpacked.float(), images)
    parts = dsprites.DSPRITES.split_indices(val_size=5000)
    assert [len(parts[k]) for k in ("test", "val", "train")] == [10_000, 5000, 737_280 - 15_000]
    everything = np.concatenate(list(parts.values()))
    assert len(np.unique(everything)) == 737_280
    assert np.array_equal(dsprites.DSPRITES.split_indices(5000)["test"], parts["test"])  # fixed, whatever the run's seed


def test_bad_original_files_get_one_line_errors(tmp_path):
    with pytest.raises(BetaVAEError, match="does not exist; pass --data-dir"):
        dsprites.packed_images(tmp_path / "nowhere")
    wrong = tmp_path / dsprites.ORIGINAL_FILE
    np.savez(wrong, imgs=np.zeros((10, 64, 64), np.uint8), latents_classes=np.zeros((10, 6), np.int64))
    with pytest.raises(BetaVAEError, match="expected"):
        dsprites.packed_images(tmp_path)
    wrong.write_bytes(b"not a zip")
    with pytest.raises(BetaVAEError, match="is not a dSprites npz"):
        dsprites.packed_images(tmp_path)
    with open(wrong, "wb") as stream:  # np.save writes a .npy whatever the name says
        np.save(stream, np.zeros((10, 64, 64), np.uint8))
    with pytest.raises(BetaVAEError, match="single .npy array saved under an .npz name"):
        dsprites.packed_images(tmp_path)


def test_a_truncated_cache_is_rendered_again(monkeypatch):
    path = dsprites.cache_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.zeros((3, 512), np.uint8))
    monkeypatch.setattr(dsprites, "render_packed", lambda log=None: np.ones((dsprites.N_IMAGES, 512), np.uint8))
    lines = []
    assert dsprites.packed_images(log=lines.append).shape == (dsprites.N_IMAGES, 512)
    assert "it will be rebuilt" in lines[0] and dsprites.read_cache(path).shape == (dsprites.N_IMAGES, 512)
