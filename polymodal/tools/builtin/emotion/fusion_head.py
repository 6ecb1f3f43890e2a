"""A small trainable late-fusion head: concatenated embeddings -> one linear layer -> labels.

The seed's "simple text + image model": when a weighted average of two classifiers' outputs is not
enough (their label sets differ, or one modality is more reliable for some classes), a linear
classifier over both models' embeddings learns the combination from a few labelled examples.
Features are standardised with the training set's mean and spread, so embeddings of very
different scales (a wav2vec2 voice vector, a ViT face vector) weigh in fairly.

Saved as a folder: ``head.safetensors`` (weights, bias, feature mean/std) and ``head.json``
(labels, sizes), so loading never unpickles code.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.errors import ConfigurationError

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

_WEIGHTS = "head.safetensors"
_META = "head.json"


class FusionHead:
    """Linear classifier over concatenated embeddings, trained with full-batch Adam.

    Args:
        labels: the classes, in output order.
        dim: the length of one feature vector (the concatenated embeddings).
    """

    def __init__(self, labels: Sequence[str], dim: int) -> None:
        import torch

        if len(labels) < 2 or len(set(labels)) != len(labels):
            msg = f"fusion head: needs at least two distinct labels, got {list(labels)}"
            raise ConfigurationError(msg)
        self.labels = list(labels)
        self.dim = int(dim)
        self.linear = torch.nn.Linear(self.dim, len(self.labels))
        self.mean = torch.zeros(self.dim)
        self.std = torch.ones(self.dim)

    def fit(self, features: np.ndarray, labels: Sequence[str], *, epochs: int = 300, lr: float = 0.05,
            weight_decay: float = 1e-3, seed: int = 0) -> float:
        """Train on ``features`` (n x dim) with one label per row; returns the final training loss."""
        import torch

        unknown = sorted(set(labels) - set(self.labels))
        rows = np.asarray(features).shape[0] if np.asarray(features).ndim else 0
        if len(labels) != rows or unknown:
            msg = f"fusion head: {len(labels)} labels for {rows} rows; unknown labels: {unknown or 'none'}"
            raise ConfigurationError(msg)
        # Training needs autograd even when the caller sits inside torch.inference_mode (a tool's forward).
        with torch.inference_mode(False), torch.enable_grad():
            x = self._check(features)
            y = torch.tensor([self.labels.index(label) for label in labels])
            self.mean = x.mean(0)
            self.std = x.std(0, unbiased=False).clamp(min=1e-6)
            torch.manual_seed(seed)
            self.linear.reset_parameters()
            optimiser = torch.optim.Adam(self.linear.parameters(), lr=lr, weight_decay=weight_decay)
            z = (x - self.mean) / self.std
            loss = torch.tensor(0.0)
            for _ in range(epochs):
                optimiser.zero_grad()
                loss = torch.nn.functional.cross_entropy(self.linear(z), y)
                loss.backward()
                optimiser.step()
        return float(loss.detach())

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per feature vector, columns in ``labels`` order."""
        import torch

        with torch.no_grad():
            z = (self._check(features) - self.mean) / self.std
            return self.linear(z).softmax(-1).numpy()

    def predict(self, features: np.ndarray) -> list[str]:
        """The most likely label per row."""
        return [self.labels[i] for i in self.predict_proba(features).argmax(1)]

    def save(self, folder: str | Path) -> Path:
        """Write ``head.safetensors`` and ``head.json`` into ``folder`` (created if needed)."""
        from safetensors.torch import save_file

        out = Path(folder)
        out.mkdir(parents=True, exist_ok=True)
        tensors = {"weight": self.linear.weight.detach().contiguous(), "bias": self.linear.bias.detach().contiguous(),
                   "mean": self.mean.contiguous(), "std": self.std.contiguous()}
        save_file(tensors, str(out / _WEIGHTS))
        (out / _META).write_text(json.dumps({"labels": self.labels, "dim": self.dim}, indent=2))
        return out

    @classmethod
    def load(cls, folder: str | Path) -> FusionHead:
        """Read a head written by :meth:`save`; a missing or broken folder is a ConfigurationError."""
        from safetensors.torch import load_file

        root = Path(folder).expanduser()
        if not (root / _META).is_file() or not (root / _WEIGHTS).is_file():
            msg = f"fusion head: {str(folder)!r} has no {_META} and {_WEIGHTS} (see FusionHead.save)"
            raise ConfigurationError(msg)
        try:
            meta = json.loads((root / _META).read_text())
            head = cls(meta["labels"], meta["dim"])
            tensors = load_file(str(root / _WEIGHTS))
            head.linear.weight.data.copy_(tensors["weight"])
            head.linear.bias.data.copy_(tensors["bias"])
            head.mean, head.std = tensors["mean"], tensors["std"]
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            msg = f"fusion head: cannot read {str(folder)!r}: {exc}"
            raise ConfigurationError(msg) from exc
        return head

    def _check(self, features: np.ndarray) -> Any:
        import torch

        x = torch.as_tensor(np.asarray(features, dtype=np.float32))
        if x.dim() != 2 or x.shape[1] != self.dim:
            msg = f"fusion head: expected features of shape (n, {self.dim}), got {tuple(x.shape)}"
            raise ConfigurationError(msg)
        return x
