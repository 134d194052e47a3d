"""The project's own digit classifier: a small CNN whose features and class probabilities score generated samples
(Fréchet distance, classifier score, precision and recall). Trained once by `betavae classifier train` and cached as
safetensors beside the data cache."""

from __future__ import annotations

import json
import math
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as save_safetensors_bytes
from torch import nn

from .. import atomic
from .. import data as datalib
from ..data.sources import cache_dir
from ..errors import BetaVAEError

FEATURES = 128


class DigitClassifier(nn.Module):
    """conv 5x5 (32) - pool - conv 5x5 (64) - pool - dense 128 (the features) - dense to classes."""

    def __init__(self, image_shape: tuple[int, int, int] = (1, 28, 28), classes: int = 10):
        super().__init__()
        c, h, w = image_shape
        self.image_shape, self.classes = tuple(image_shape), classes
        self.convs = nn.Sequential(nn.Conv2d(c, 32, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
                                   nn.Conv2d(32, 64, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten())
        self.dense = nn.Sequential(nn.Linear(64 * (h // 4) * (w // 4), FEATURES), nn.ReLU())
        self.dropout = nn.Dropout(0.4)
        self.out = nn.Linear(FEATURES, classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.dense(self.convs(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.dropout(self.features(x)))


@torch.no_grad()
def features_and_probabilities(model: DigitClassifier, images: torch.Tensor, batch_size: int = 500
                               ) -> tuple[torch.Tensor, torch.Tensor]:
    """Penultimate-layer features (N, 128) and class probabilities (N, classes) of images in [0, 1]."""
    model.eval()
    features, probabilities = [], []
    for batch in images.split(batch_size):
        f = model.features(batch)
        features.append(f)
        probabilities.append(F.softmax(model.out(f), dim=1))
    return torch.cat(features), torch.cat(probabilities)


@torch.no_grad()
def accuracy(model: DigitClassifier, split: datalib.Split) -> float:
    _, probabilities = features_and_probabilities(model, split.images)
    return float((probabilities.argmax(1) == split.labels).float().mean())


def train_classifier(data: datalib.Data, epochs: int = 8, seed: int = 0, batch_size: int = 128,
                     log=lambda line: print(line, file=sys.stderr)) -> tuple[DigitClassifier, float]:
    """Adam with cosine decay and small random shifts of the training images; returns the model and test accuracy."""
    if not data.train.labelled:
        raise BetaVAEError("the classifier needs labels; this data set has none")
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    classes = int(data.train.labels.max()) + 1
    model = DigitClassifier(data.image_shape, classes)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * math.ceil(len(data.train) / batch_size)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=2e-3, total_steps=steps)
    for epoch in range(1, epochs + 1):
        model.train()
        start = time.perf_counter()
        for index in datalib.batch_indices(len(data.train), batch_size, generator):
            x = random_shift(data.train.images[index], generator)
            loss = F.cross_entropy(model(x), data.train.labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
        held_out = data.val if len(data.val) else data.test
        log(f"classifier epoch {epoch}: {'validation' if len(data.val) else 'test'} accuracy "
            f"{accuracy(model, held_out):.4f} ({time.perf_counter() - start:.0f} s)")
    return model, accuracy(model, data.test)


def random_shift(x: torch.Tensor, generator: torch.Generator, pixels: int = 2) -> torch.Tensor:
    """Translate the whole batch by up to `pixels` in each direction (zero fill): cheap augmentation."""
    dy, dx = (int(v) for v in torch.randint(-pixels, pixels + 1, (2,), generator=generator))
    return torch.roll(F.pad(x, (pixels,) * 4), (dy, dx), dims=(2, 3))[:, :, pixels:-pixels, pixels:-pixels]


def default_classifier(dataset: str) -> Path | None:
    """Where the classifier that scores a data set's samples is cached, or None when the registry knows none (the
    user's own images: train one with --out and pass it with --classifier)."""
    name = datalib.lookup(dataset).classifier
    return cache_dir() / f"classifier-{name}.safetensors" if name else None


def save_classifier(model: DigitClassifier, path: Path, test_accuracy: float) -> None:
    metadata = {"image_shape": json.dumps(list(model.image_shape)), "classes": str(model.classes),
                "test_accuracy": f"{test_accuracy:.5f}"}
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    atomic.write_bytes(path, save_safetensors_bytes(state, metadata=metadata))


def load_classifier(path: str | Path, training: str = "betavae classifier train --dataset DATA"
                    ) -> tuple[DigitClassifier, float]:
    """The classifier at path and its test accuracy; a clear error, with the command that trains it (`training`, to
    which --out is added), when there is none."""
    path = Path(path)
    if not path.is_file():
        raise BetaVAEError(f"no classifier at {path}; train one with: {training} --out {path}")
    try:
        with safe_open(str(path), framework="pt") as stored:
            header = stored.metadata() or {}
            state = {key: stored.get_tensor(key) for key in stored.keys()}
        model = DigitClassifier(tuple(json.loads(header["image_shape"])), int(header["classes"]))
        model.load_state_dict(state)
        test_accuracy = float(header["test_accuracy"])
    except KeyError:
        raise BetaVAEError(f"{path} is not a betavae classifier (it lacks a classifier's metadata: a model's weights?); "
                           "give the file betavae classifier train --out wrote") from None
    except (SafetensorError, OSError, ValueError, TypeError, RuntimeError) as error:
        raise BetaVAEError(f"{path} is not a betavae classifier ({str(error)[:120]}); retrain it with "
                           "betavae classifier train") from None
    return model.eval(), test_accuracy
