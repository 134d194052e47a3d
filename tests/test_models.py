import math
import numpy as np
import pytest
import torch

from betavae.config import preset
from betavae.model import networks


@pytest.mark.parametrize("name", ["description", "conv"])
@pytest.mark.parametrize("shape", [(1, 28, 28), (1, 30, 20), (1, 64, 64)])
def test_shapes(name, shape):
    model = networks.build(preset(name), shape)
    x = torch.rand(3, *shape)
    logits, mean, logvar = model(x)
    assert logits.shape == (3, *shape)
    assert mean.shape == logvar.shape == (3, 20)
    assert model.sample(2).shape == (2, *shape)
    recon = model.reconstruct(x)
    assert recon.shape == (3, *shape) and 0 <= recon.min() and recon.max() <= 1


def test_description_mlp_has_the_notebooks_size():
    model = networks.build(preset("description"), (1, 28, 28))
    assert sum(p.numel() for p in model.parameters()) == 652_824  # 784-400-40 and 20-400-784


def test_logvar_is_clamped():
    model = networks.build(preset("vae"), (1, 28, 28))
    with torch.no_grad():
        model.encoder[1][-1].bias.fill_(1e6)
    _, logvar = model.encode(torch.rand(2, 1, 28, 28))
    assert torch.isfinite(logvar.exp()).all() and logvar.max() == networks.LOGVAR_RANGE[1]


def test_reconstruct_decodes_the_mean():
    model = networks.build(preset("vae"), (1, 28, 28))
    x = torch.rand(2, 1, 28, 28)
    mean, _ = model.encode(x)
    assert torch.allclose(model.reconstruct(x), torch.sigmoid(model.decode(mean)))


@pytest.mark.parametrize("name", ["vae", "conv"])
def test_output_bias_starts_at_the_mean_image(name):
    model = networks.build(preset(name), (1, 28, 28))
    mean_image = torch.rand(1, 28, 28) * 0.8 + 0.1
    networks.init_output_bias(model, mean_image)
    last = [m for m in model.decoder.modules() if isinstance(m, (torch.nn.Linear, torch.nn.ConvTranspose2d))][-1]
    expected = torch.logit(mean_image).flatten() if name == "vae" else torch.logit(mean_image).mean().reshape(1)
    assert torch.allclose(last.bias, expected, atol=1e-6)


@pytest.mark.parametrize("name", ["vae", "conv"])
def test_activation_is_used_in_every_hidden_layer(name):
    activations = lambda m: {type(layer) for layer in m.modules() if type(layer) in networks.ACTIVATIONS.values()}
    assert activations(networks.build(preset(name), (1, 28, 28))) == {torch.nn.ReLU}
    model = networks.build(preset(name).replace(activation="silu"), (1, 28, 28))
    assert activations(model) == {torch.nn.SiLU}
    assert model(torch.rand(2, 1, 28, 28))[0].shape == (2, 1, 28, 28)


def test_a_model_larger_than_free_memory_is_refused_before_it_is_made(monkeypatch, tmp_path, capsys):
    """Each width within bounds can still multiply to far too much (65536,65536 is 130 GiB to train): said in one
    line, counted on the meta device, before any memory is taken."""
    from betavae import cli

    from .conftest import synthetic_images
    monkeypatch.setattr(networks, "available_memory", lambda: 1 << 30)
    x, y = synthetic_images(100, (28, 28))
    np.savez(tmp_path / "d.npz", images=x, labels=y)
    argv = ["train", "--dataset", str(tmp_path / "d.npz"), "--val-size", "20", "--latent-dim", "2", "--epochs", "1",
            "--no-figures", "--runs", str(tmp_path), "--name", "r"]
    assert cli.main([*argv, "--hidden", "8192,8192"]) == 1
    err = capsys.readouterr().err
    assert "parameters: training it takes about 2.2 GiB" in err and "than the 1.0 GiB of memory free" in err, err
    assert cli.main([*argv, "--hidden", "64"]) == 0  # a model that fits trains


def test_the_public_methods_refuse_images_of_another_shape_or_range_in_one_line():
    """A user's tensors: 3 channels for a grey model would fail deep inside torch, 0..255 would be read silently."""
    from betavae.errors import BetaVAEError
    model = networks.build(preset("vae").replace(hidden=(16,), latent_dim=2), (1, 8, 8))
    for images, message in ((torch.zeros(2, 3, 8, 8), r"shape \(2, 3, 8, 8\), but this model reads \(N, 1, 8, 8\)"),
                            (torch.full((2, 1, 8, 8), 255.0), r"from 255 to 255, but this model reads finite values in \[0, 1\]")):
        for method in (model.posterior_means, model.reconstruct):
            with pytest.raises(BetaVAEError, match=message):
                method(images)
    with pytest.raises(BetaVAEError, match=r"shape \(2, 1, 12, 12\), but this model reads \(N, 1, 8, 8\)"):
        model.encode(torch.zeros(2, 1, 12, 12))
    with pytest.raises(BetaVAEError, match=r"codes of shape \(2, 7\), but this model decodes a tensor \(N, 2\)"):
        model.decode(torch.zeros(2, 7))
    assert model.posterior_means(np.random.rand(3, 1, 8, 8).astype(np.float32)).shape == (3, 2)  # numpy is read
    assert model.posterior_means(torch.rand(3, 1, 8, 8)).shape == (3, 2)
    assert model.reconstruct(torch.rand(3, 1, 8, 8) > 0.5).shape == (3, 1, 8, 8)  # bool images are 0/1


def test_encode_decode_and_sample_take_a_users_values_or_say_why_not():
    """numpy and uint8 images are read by their meaning, doubles and whole-number codes as floats; NaN, 0..255 floats,
    lists and sample sizes out of range are one line."""
    from betavae.errors import BetaVAEError
    model = networks.build(preset("vae").replace(hidden=(16,), latent_dim=2), (1, 8, 8))
    images = torch.rand(3, 1, 8, 8)
    bytes_ = (images * 255).round().to(torch.uint8)
    assert torch.allclose(model.encode(bytes_)[0], model.encode(bytes_.float() / 255)[0])
    assert torch.allclose(model.encode(images.double())[0], model.encode(images)[0])
    assert torch.allclose(model.encode(images.numpy())[0], model.encode(images)[0])
    assert model.decode(torch.zeros(2, 2, dtype=torch.long)).shape[0] == 2
    for bad, message in ((images * 255, "but this model reads finite values in"), (torch.full((1, 1, 8, 8), math.nan), "finite values"),
                         ([[0.0] * 64], "must be a torch tensor")):
        with pytest.raises(BetaVAEError, match=message):
            model.encode(bad)
    with pytest.raises(BetaVAEError, match="must be a torch tensor"):
        model.posterior_means([[0.0] * 64])
    for n in (-1, 0, 10**9):
        with pytest.raises(BetaVAEError, match="n must be a whole number from 1 to 100,000"):
            model.sample(n)
