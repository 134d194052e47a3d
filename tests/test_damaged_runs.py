"""Damaged run files, generated: every file of a finished run truncated, with flipped bytes, replaced by random bytes,
by JSON of the wrong types, by an empty file or by a folder; every command that reads a run then ends with 0, or with
1 and one line naming the problem, never a traceback."""

import contextlib
import io
import json
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from safetensors.torch import load as load_safetensors
from safetensors.torch import save as save_safetensors

from betavae import cli
from betavae.training import folder

from .conftest import synthetic_images

FILES = (folder.CONFIG, folder.STATUS, folder.METRICS_JSONL, folder.CHECKPOINT, folder.BEST_CHECKPOINT,
         folder.WEIGHTS, f"{folder.SAMPLERS}/*.safetensors", folder.LATENTS, folder.EVALUATION,
         folder.DISENTANGLEMENT, folder.UDR)
COMMANDS = {  # what each command reads of a run, with sizes that keep it quick
    "report": ["report"],
    "sample": ["sample", "--n", "4", "--sampler", "gmm"],
    "reconstruct": ["reconstruct", "--indices", "0,1"],
    "interpolate": ["interpolate", "--pairs", "0:1", "--steps", "3"],
    "traverse": ["traverse"],
    "latent-map": ["latent-map"],
    "curves": ["curves"],
    "evaluate": ["evaluate", "--samples", "8", "--importance-samples", "2", "--repeats", "1", "--no-probes"],
    "resume": ["train", "--epochs", "2", "--resume"],
}

DROP = object()  # a "drop field" damage's value
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=6),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6)
damages = st.one_of(
    st.tuples(st.just("truncate"), st.floats(0, 1, exclude_max=True)),
    st.tuples(st.just("flip"), st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                                        min_size=1, max_size=4)),
    st.tuples(st.just("random bytes"), st.binary(max_size=300)),
    st.tuples(st.just("json"), json_values),
    st.tuples(st.just("field"), st.integers(0, 50), st.integers(0, 50), json_values),
    st.tuples(st.just("drop field"), st.integers(0, 50), st.integers(0, 50)),
    st.tuples(st.just("empty")),
    st.tuples(st.just("directory")),
)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    """One tiny finished run with every file a run can hold: figures and samplers from training, evaluation.json
    from evaluate, disentanglement.json and udr.json as those commands write them."""
    root = tmp_path_factory.mktemp("damaged")
    x, y = synthetic_images(200, (12, 12))
    np.savez(root / "d.npz", images=x, labels=y)
    run = root / "r"
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert cli.main(["train", "--dataset", str(root / "d.npz"), "--val-size", "40", "--hidden", "16",
                         "--latent-dim", "2", "--batch-size", "32", "--epochs", "1", "--runs", str(root),
                         "--name", "r"]) == 0
        assert cli.main(["sample", str(run), "--n", "4", "--sampler", "gmm"]) == 0  # fits and keeps the sampler
        assert cli.main(["evaluate", str(run), *COMMANDS["evaluate"][1:]]) == 0
    kl = [0.5, 0.1]
    (run / folder.DISENTANGLEMENT).write_text(json.dumps({
        "format": 1, "run": str(run), "seed": 0, "kl_per_dim": kl, "details": {},
        "scores": {"beta_vae": 0.5, "factor_vae": 0.4, "mig": 0.1, "dci_disentanglement": 0.2,
                   "dci_completeness": 0.2, "dci_informativeness": 0.6, "sap": 0.05}}))
    (run / folder.UDR).write_text(json.dumps({
        "format": 1, "dataset": str(root / "d.npz"), "kl_threshold": 0.01, "variant": "lasso", "run": str(run),
        "udr": 0.3, "rank": 1, "informative_latents": [0], "latent_dim": 2, "against": {}, "of": 2,
        "best": str(run)}))
    assert all(list(run.glob(name)) for name in FILES)
    return run


def damaged_bytes(original: bytes, suffix: str, damage: tuple) -> bytes:
    """The bytes a file holds after a damage (all but "directory")."""
    kind, *args = damage
    if kind == "truncate":
        return original[:int(len(original) * args[0])]
    if kind == "flip":
        data = bytearray(original)
        for where, mask in args[0]:
            if data:
                data[int(len(data) * where)] ^= mask
        return bytes(data)
    if kind == "random bytes":
        return args[0]
    if kind in ("field", "drop field"):
        return structured(original, suffix, *args)
    if kind == "json":
        return json.dumps(args[0]).encode()
    return b""


def structured(original: bytes, suffix: str, line: int, key: int, value=DROP) -> bytes:
    """The file with one entry replaced by value (dropped without one): a key of a JSON file or of one line of a
    JSON-lines file, a key of a checkpoint, an array of an .npz or .safetensors file (by one of another shape)."""
    if suffix == ".pt":
        state = torch.load(io.BytesIO(original), weights_only=True)
        replace(state, key, value)
        buffer = io.BytesIO()
        torch.save(state, buffer)
        return buffer.getvalue()
    other = np.arange(line % 7 * (key % 5), dtype=np.float32).reshape(line % 7, key % 5)
    if suffix == ".npz":
        with np.load(io.BytesIO(original)) as stored:
            arrays = {name: stored[name] for name in stored.files}
        replace(arrays, key, other)
        buffer = io.BytesIO()
        np.savez(buffer, **arrays)
        return buffer.getvalue()
    if suffix == ".safetensors":
        tensors = load_safetensors(original)
        replace(tensors, key, torch.from_numpy(other))
        return save_safetensors(tensors, metadata=safetensors_metadata(original))
    if suffix == ".json":
        table = json.loads(original)
        replace(table, key, value)
        return json.dumps(table).encode()
    records = [json.loads(text) for text in original.decode().splitlines()]
    replace(records[line % len(records)], key, value)
    return "".join(json.dumps(r) + "\n" for r in records).encode()


def replace(table: dict, key: int, value) -> None:
    if table:
        name = sorted(table)[key % len(table)]
        if value is DROP:
            del table[name]
        else:
            table[name] = value


def safetensors_metadata(data: bytes) -> dict[str, str]:
    header = json.loads(data[8:8 + int.from_bytes(data[:8], "little")])
    return header.get("__metadata__", {})


def damage_copy(run: Path, pattern: str, damage: tuple, into: Path) -> Path:
    """A copy of the run folder with the files a pattern names damaged."""
    copy = into / run.name
    shutil.copytree(run, copy)
    for path in copy.glob(pattern):
        original = path.read_bytes()
        path.unlink()
        if damage[0] == "directory":
            path.mkdir()
        else:
            path.write_bytes(damaged_bytes(original, path.suffix, damage))
    return copy


def run_command(command: str, run: Path) -> tuple[int, str]:
    """A command in-process on a run: its exit code and what it wrote to stderr."""
    err = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
        code = cli.main([*COMMANDS[command], str(run)])
    return code, err.getvalue()


@pytest.mark.parametrize("pattern", FILES)
@pytest.mark.parametrize("command", COMMANDS)
# derandomized, no example database and no shrinking (a failing damage is printed as drawn): the same cases in the
# same time on every machine; 9 commands x 11 files x 4 examples, about a minute on one core
@settings(max_examples=4, deadline=None, derandomize=True, database=None, phases=(Phase.explicit, Phase.generate),
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(damage=damages)
def test_a_damaged_run_file_never_ends_in_a_traceback(finished_run, pattern, command, damage):
    with tempfile.TemporaryDirectory() as scratch:
        copy = damage_copy(finished_run, pattern, damage, Path(scratch))
        code, err = run_command(command, copy)
    assert code in (0, 1), err
    if code == 1:
        lines = err.strip().splitlines()
        assert lines[-1].startswith("betavae: error: ") and "Traceback" not in err, err
        assert sum(line.startswith("betavae: error") for line in lines) == 1, err


@pytest.mark.parametrize("damage", [("random bytes", b"{\"state\": \"fini"), ("empty",), ("json", [1, 2])])
def test_a_damaged_status_is_named_with_the_resume_that_writes_it_again(finished_run, tmp_path, damage):
    copy = damage_copy(finished_run, folder.STATUS, damage, tmp_path)
    code, err = run_command("sample", copy)
    assert code == 1 and f"{copy / folder.STATUS} is damaged" in err and "train --resume" in err, err
    assert run_command("resume", copy)[0] == 0  # the advice works: status.json is written again
    assert folder.read_status(copy)["state"] == "finished" and run_command("sample", copy)[0] == 0


def test_a_missing_status_is_named(finished_run, tmp_path):
    copy = damage_copy(finished_run, "nothing", ("empty",), tmp_path)
    (copy / folder.STATUS).unlink()
    code, err = run_command("report", copy)
    assert code == 0 or f"{copy / folder.STATUS} is missing" in err, err
    code, err = run_command("sample", copy)
    assert code == 1 and f"{copy / folder.STATUS} is missing" in err, err


def test_hostile_pass_4_damages_are_named_with_a_fix(finished_run, tmp_path):
    """A status.json of epoch -1, a NaN loss in metrics.jsonl, a truncated model.safetensors, and a run whose
    trainer was killed: each is one line naming what is wrong and a fix."""
    status = damage_copy(finished_run, folder.STATUS, ("field", 0, 0, -1), tmp_path / "s")  # its first key: epoch
    code, err = run_command("sample", status)
    assert code == 1 and f"{status / folder.STATUS} is damaged" in err, err
    nan = damage_copy(finished_run, "nothing", ("empty",), tmp_path / "n")
    lines = (nan / folder.METRICS_JSONL).read_text().splitlines()
    record = json.loads(lines[1])
    record["train"]["loss"] = float("nan")
    (nan / folder.METRICS_JSONL).write_text("\n".join([lines[0], json.dumps(record), *lines[2:]]) + "\n")
    code, err = run_command("curves", nan)
    assert code == 1 and "damaged at line 2 (train is not a table of loss, recon, kl and neg_elbo, finite" in err, err
    cut = damage_copy(finished_run, folder.WEIGHTS, ("truncate", 0.5), tmp_path / "w")
    code, err = run_command("sample", cut)
    assert code == 1 and f"write it again from the run's checkpoint with: betavae train --resume {cut}" in err, err
    killed = damage_copy(finished_run, "nothing", ("empty",), tmp_path / "k")
    folder.write_status(killed, "running", 1, 3)
    code, err = run_command("sample", killed)
    assert code == 1 and "stopped while running (epoch 1 of 3; killed?); finish it with: betavae train --resume" in err


def test_an_npz_with_images_under_two_keys_says_which_it_reads(tmp_path):
    from betavae.data import images
    x, y = synthetic_images(20, (6, 6))
    np.savez(tmp_path / "two.npz", images=x, x=x[:, :3], labels=y)
    said = []
    assert images.read_npz(tmp_path / "two.npz", log=said.append).train_images.shape[2:] == (6, 6)
    assert said and "images read from 'images'; also under 'x', left out" in said[0], said
