"""A training step's forward pass, loss and gradients as a CUDA graph: captured once, then replayed with one launch.

A small model on a GPU is limited by launching its hundred-odd kernels one by one from Python, not by arithmetic;
a graph replays them all at once. The optimizer step stays outside the graph (fused Adam: one launch), so the
learning-rate schedule needs no special handling. Gradients are written into fixed buffers (each parameter's
.grad, never set to None) by both the graph and the eager path that serves batches of another size (the short last
batch of an epoch), so the two can alternate freely.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..model.objectives import Terms

WARMUP_STEPS = 3  # eager runs on a side stream before capture, as CUDA graphs require (handles, autograd state)
LossTerms = Callable[[torch.Tensor, "torch.Tensor | int"], Terms]


def supported(device: torch.device, distributed: bool, draws_pixels: bool) -> bool:
    """Graphs serve one CUDA process whose steps draw only from the default generator (binarizing grey images uses
    a generator of its own; DDP's gradient hooks need .backward())."""
    return device.type == "cuda" and not distributed and not draws_pixels


class GraphedGradients:
    """Computes the loss terms of a batch and writes the gradients of its loss into each parameter's .grad.

    `loss_terms(index, step)` gives the terms of the batch of training images at `index`, at optimizer step `step`
    (a 0-dim tensor inside the graph, so step-dependent weights such as a capacity schedule stay right)."""

    def __init__(self, loss_terms: LossTerms, parameters: list[torch.nn.Parameter], batch_size: int,
                 device: torch.device):
        self.loss_terms, self.parameters = loss_terms, list(parameters)
        for p in self.parameters:
            p.grad = torch.zeros_like(p)
        self.index = torch.zeros(batch_size, dtype=torch.long, device=device)
        self.step = torch.zeros((), device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.terms: Terms | None = None

    def __call__(self, index: torch.Tensor, step: int) -> Terms:
        if len(index) != len(self.index):
            return self._gradients(index, step)  # another batch size: eager, into the same buffers
        self.index.copy_(index)
        self.step.fill_(step)
        if self.graph is None:
            self._capture()
        self.graph.replay()
        return self.terms

    def _gradients(self, index: torch.Tensor, step: torch.Tensor | int) -> Terms:
        terms = self.loss_terms(index, step)
        for p, grad in zip(self.parameters, torch.autograd.grad(terms.loss, self.parameters)):
            p.grad.copy_(grad)
        # Detached, so the captured autograd graph is freed: kept alive, its nodes (made on the capture's stream)
        # would make every later eager step warn of a stream mismatch and synchronize.
        return terms.detach()

    def _capture(self) -> None:
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(WARMUP_STEPS):
                self._gradients(self.index, self.step)
        torch.cuda.current_stream().wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.terms = self._gradients(self.index, self.step)
