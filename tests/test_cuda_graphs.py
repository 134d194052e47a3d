"""CUDA-graph training steps: the logic around the graph (fixed buffers, a step-dependent loss, the short last batch)
runs everywhere with a stand-in graph that re-runs the captured function; real capture runs where a GPU is."""

import types

import pytest
import torch
from torch import nn

from betavae.model import objectives
from betavae.training import cuda_graphs, fit, folder
from betavae.training.cuda_graphs import GraphedGradients

from .test_training import TINY, weights

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")


def rerun_instead_of_capture(monkeypatch) -> list[int]:
    """Let the trainer use GraphedGradients on the CPU, with a 'graph' that re-runs the step; returns replay counts."""
    replays = []

    def capture(self):
        def replay():
            replays.append(1)
            self.terms = self._gradients(self.index, self.step)
        self.graph = types.SimpleNamespace(replay=replay)

    monkeypatch.setattr(cuda_graphs, "supported", lambda *args: True)
    monkeypatch.setattr(GraphedGradients, "_capture", capture)
    return replays


def test_graphed_steps_follow_the_eager_trajectory(tmp_path, data, monkeypatch):
    # batch 40 of 192 images: four full batches and a short one per epoch; the capacity target moves every step
    config = TINY.replace(batch_size=40, objective="capacity", gamma=50.0, capacity_max=5.0, capacity_steps=6)
    eager = fit(config, tmp_path / "eager", data=data, log=lambda line: None)
    replays = rerun_instead_of_capture(monkeypatch)
    graphed = fit(config, tmp_path / "graphed", data=data, log=lambda line: None)
    assert len(replays) == 2 * 4  # the full batches replayed; the short ones ran eagerly
    a, b = weights(eager), weights(graphed)
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=1e-5, atol=1e-6)
    for x, y in zip(folder.read_metrics(eager), folder.read_metrics(graphed)):
        assert x["train"]["loss"] == pytest.approx(y["train"]["loss"], rel=1e-5)


def test_cuda_graphs_can_be_turned_off(tmp_path, data, monkeypatch):
    replays = rerun_instead_of_capture(monkeypatch)
    fit(TINY.replace(epochs=1, cuda_graphs=False), tmp_path / "r", data=data, log=lambda line: None)
    assert replays == []


def test_a_tensor_step_gives_the_same_schedule_as_an_int():
    loss = objectives.CapacityLoss.with_settings(gamma=10.0, capacity_min=1.0, capacity_max=5.0, capacity_steps=8)
    for step in (0, 3, 8, 20):
        assert float(loss.capacity(torch.tensor(float(step)))) == pytest.approx(loss.capacity(step))
    warm = objectives.BetaVAELoss.with_settings(beta=4.0, beta_warmup_steps=10, beta_start=16.0)
    assert float(warm.kl_weight(torch.tensor(5.0))) == pytest.approx(warm.kl_weight(5)) == 10.0


@needs_cuda
def test_graph_replays_give_eager_gradients():
    torch.manual_seed(0)
    device = torch.device("cuda")
    model = nn.Sequential(nn.Linear(8, 16), nn.SiLU(), nn.Linear(16, 1)).to(device)
    inputs = torch.randn(100, 8, device=device)

    def loss_terms(index, step):
        fit = model(inputs[index]).pow(2).mean()
        weight = objectives.linear_anneal(0.0, 2.0, step, 10)
        return objectives.Terms(fit * (1 + weight), fit, fit, fit.reshape(1))

    graphed = GraphedGradients(loss_terms, list(model.parameters()), 16, device)
    for step, size in [(0, 16), (3, 16), (12, 16), (5, 7), (6, 16)]:
        index = torch.randint(0, 100, (size,), device=device)
        terms = graphed(index, step)
        expected = loss_terms(index, step).loss
        torch.testing.assert_close(terms.loss, expected)
        for p, grad in zip(model.parameters(), torch.autograd.grad(expected, list(model.parameters()))):
            torch.testing.assert_close(p.grad, grad)
    assert graphed.graph is not None


@needs_cuda
def test_cuda_graph_training_matches_eager_training_roughly(tmp_path, data):
    config = TINY.replace(epochs=1, device="cuda", batch_size=40)
    graphed = fit(config, tmp_path / "graphed", data=data, log=lambda line: None)
    eager = fit(config.replace(cuda_graphs=False), tmp_path / "eager", data=data, log=lambda line: None)
    loss = lambda run: folder.read_metrics(run)[1]["val"]["loss"]  # noqa: E731
    assert loss(graphed) == pytest.approx(loss(eager), rel=0.05)
