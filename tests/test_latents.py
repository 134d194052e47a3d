"""latents.npz, the posterior means the latent maps show: what is not what training wrote is refused in one line that
names the file and the fix, and training replaces a damaged one instead of failing."""

import io

import numpy as np
import pytest

from betavae import cli
from betavae.config import Config
from betavae.errors import BetaVAEError
from betavae.pictures import run_figures
from betavae.runs import Run
from betavae.training import fit

from .conftest import synthetic_images


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("latents")
    x, y = synthetic_images(200, (12, 12))
    np.savez(root / "d.npz", images=x, labels=y)
    config = Config.of(dataset=str(root / "d.npz"), val_size=40, hidden=(16,), latent_dim=3, epochs=1,
                    latent_map_size=30)
    return fit(config, root / "r", log=lambda line: None)


def npz_bytes(**arrays) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def npy_bytes(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


MEANS, LABELS = np.zeros((30, 3), np.float32), np.arange(30) % 4
DAMAGE = {  # the file's bytes -> what the line says
    "a .npy renamed": (lambda: npy_bytes(MEANS), "not an .npz archive"),
    "mismatched labels": (lambda: npz_bytes(epoch_1=MEANS, labels=LABELS[:20]), "for its 20 labels"),
    "pickled objects": (lambda: npz_bytes(epoch_1=MEANS, labels=np.array([{"x": 1}] * 30, dtype=object)),
                        "pickled data, which is never loaded"),
    "another latent size": (lambda: npz_bytes(epoch_1=np.zeros((30, 5), np.float32), labels=LABELS), "(30, 3)"),
    "no labels": (lambda: npz_bytes(epoch_1=MEANS), "no labels array"),
    "string labels": (lambda: npz_bytes(epoch_1=MEANS, labels=LABELS.astype(str)), "no labels array"),
    "another array": (lambda: npz_bytes(epoch_1=MEANS, labels=LABELS, code=MEANS), "other than epoch_N"),
    "NaN means": (lambda: npz_bytes(epoch_1=MEANS + np.nan, labels=LABELS), "NaN or infinite"),
    "another run's": (lambda: npz_bytes(epoch_1=MEANS, labels=LABELS, run_id=np.array("0123456789abcdef")),
                      "belongs to another run, run id 0123456789ab"),
    "a run_id that is not a name": (lambda: npz_bytes(epoch_1=MEANS, labels=LABELS, run_id=np.arange(3)),
                                    "its run_id is not a name"),
    "text": (lambda: b"not an archive", "latents.npz is damaged"),
    "random bytes": (lambda: bytes(range(256)) * 4, "not arrays numpy wrote"),
    "empty": (lambda: b"", "latents.npz is damaged"),
}


@pytest.mark.parametrize("damage", DAMAGE)
def test_a_damaged_latents_file_is_one_line_naming_the_fix(run_dir, damage, capsys):
    make, message = DAMAGE[damage]
    (run_dir / run_figures.LATENTS).write_bytes(make())
    assert cli.main(["latent-map", str(run_dir)]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1, err
    assert f"{run_dir / run_figures.LATENTS}" in err and "delete it and run betavae latent-map" in err
    (run_dir / run_figures.LATENTS).unlink()  # the fix the line gives
    assert cli.main(["latent-map", str(run_dir)]) == 0


def test_training_replaces_a_damaged_latents_file_with_a_warning(run_dir, capsys):
    path = run_dir / run_figures.LATENTS
    path.write_bytes(npz_bytes(epoch_1=MEANS, labels=LABELS[:20]))
    run_figures.add_latents(run_dir, 2, MEANS + 1, LABELS)
    err = capsys.readouterr().err
    assert f"{path} was damaged" in err and err.count("\n") == 1
    means, labels = run_figures.read_latents(run_dir, 3)
    assert list(means) == [2] and np.array_equal(labels, LABELS)
    run_figures.add_latents(run_dir, 3, MEANS, LABELS)  # a sound file keeps its epochs
    assert sorted(run_figures.read_latents(run_dir, 3)[0]) == [2, 3] and capsys.readouterr().err == ""
    with pytest.raises(BetaVAEError, match="not floats of shape"):
        run_figures.read_latents(run_dir, 4)


def test_training_keeps_the_run_id_in_the_latents_file(run_dir):
    """What lets a copy from another run be told apart (above)."""
    (run_dir / run_figures.LATENTS).unlink(missing_ok=True)
    assert cli.main(["latent-map", str(run_dir)]) == 0
    with np.load(run_dir / run_figures.LATENTS) as stored:
        assert str(stored["run_id"]) == Run.open(run_dir).meta.run_id != ""


@pytest.mark.parametrize("points, works", [(16, True), (4, False)])
def test_a_tsne_map_of_few_images_is_drawn_or_refused_in_one_line(run_dir, points, works, capsys):
    (run_dir / run_figures.LATENTS).unlink(missing_ok=True)
    means = np.random.default_rng(0).normal(size=(points, 3)).astype(np.float32)
    run_figures.add_latents(run_dir, 1, means, np.arange(points) % 4, Run.open(run_dir).meta.run_id)
    assert cli.main(["latent-map", str(run_dir), "--method", "tsne"]) == (0 if works else 1)
    err = capsys.readouterr().err
    assert works or ("needs at least 10 images and this run's map has 4; draw it with --method pca" in err
                     and len(err.strip().splitlines()) == 1)
