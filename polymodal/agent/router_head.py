"""The router's learned decision: a small logistic head over MiniLM embeddings, calibrated.

Cosine similarity with tool descriptions ranks tools well, but it cannot tell "what colour is
the car?" (visual QA) from "what is in this photo?" (a caption): both are close to both
descriptions. A head learned from solved requests can. For a clause with embedding ``e`` and the
tools it can feed (the router's modality mask decides which), each tool ``t`` gets the logit

    z_t = (alpha * cos_t + b_t + w_t . e) / temperature

and the clause's probabilities are the softmax of those logits over the candidate tools only.
``alpha * cos`` keeps the description prior (the head starts as the cosine router and the L2
penalty pulls it back there), ``b`` and ``w`` are what the tuning split taught it, and
``temperature`` (fitted on out-of-fold predictions, :mod:`polymodal.evaluation.fit`) makes the
probability mean what it says: among routes the head gives 0.8, about 8 in 10 are right.

The weights are a few KB of float32 in an ``.npz`` (``polymodal/agent/data/router_head.npz`` is
the shipped one, written by ``polymodal eval --fit``), read once per process. A head belongs to
the encoder it was trained on: it keeps that encoder's embedding of a probe sentence, and a
router whose encoder embeds the probe differently (another model) does not use it.
"""

from __future__ import annotations

import threading
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from polymodal.errors import ConfigurationError

__all__ = ["PACKAGED_HEAD", "PROBE", "RouterHead", "load_head", "resolve_head"]

PACKAGED_HEAD = Path(__file__).resolve().parent / "data" / "router_head.npz"
PROBE = "polymodal router head probe: what does this voice note say?"
_MATCH = 0.999  # cosine between the stored and the live probe embedding: the same encoder


@dataclass
class RouterHead:
    """Weights of the head (see the module docstring) and its routing thresholds."""

    tools: list[str]
    alpha: float
    bias: np.ndarray
    """(tools,) per-tool bias."""
    weights: np.ndarray
    """(tools, dim) per-tool weights on the clause embedding."""
    temperature: float
    probe: np.ndarray
    """(dim,) the training encoder's embedding of :data:`PROBE`."""
    min_confidence: float = 0.5
    """A clause whose best tool's probability is below this is unsure (the next tier plans)."""

    def logits(self, embedding: np.ndarray, cosines: Sequence[float], names: Sequence[str]) -> np.ndarray:
        """Calibrated logits of the candidate tools ``names`` (their cosines in the same order)."""
        index = [self.tools.index(n) if n in self.tools else -1 for n in names]
        known = np.asarray([i >= 0 for i in index])
        rows = np.asarray([max(i, 0) for i in index])
        learned = np.where(known, self.bias[rows] + self.weights[rows] @ embedding, 0.0)
        return (self.alpha * np.asarray(cosines, dtype=np.float64) + learned) / self.temperature

    def probabilities(self, embedding: np.ndarray, ranked: Sequence[tuple[str, float]]) -> list[tuple[str, float]]:
        """(tool, probability) of the candidates ``ranked`` ((tool, cosine) pairs), most likely first."""
        if not ranked:
            return []
        names = [name for name, _ in ranked]
        z = self.logits(embedding, [c for _, c in ranked], names)
        p = np.exp(z - z.max())
        p /= p.sum()
        return sorted(zip(names, map(float, p), strict=True), key=lambda item: -item[1])

    def fits(self, probe_embedding: np.ndarray) -> bool:
        """Was this head trained on the encoder that embeds :data:`PROBE` as ``probe_embedding``?"""
        if probe_embedding.shape != self.probe.shape:
            return False
        return float(probe_embedding @ self.probe) >= _MATCH

    def save(self, path: str | Path) -> Path:
        """Write the head as an ``.npz`` (float32, no pickles); returns the path written."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        with open(target, "wb") as fp:
            np.savez_compressed(
                fp, tools=np.asarray(self.tools), alpha=np.float32(self.alpha), bias=self.bias.astype(np.float32),
                weights=self.weights.astype(np.float32), temperature=np.float32(self.temperature),
                probe=self.probe.astype(np.float32), min_confidence=np.float32(self.min_confidence))
        return target

    @classmethod
    def load(cls, path: str | Path) -> RouterHead:
        """Read a head written by :meth:`save`; a file that is not one raises ConfigurationError naming it."""
        try:
            with np.load(Path(path), allow_pickle=False) as data:
                head = cls(tools=[str(t) for t in data["tools"]], alpha=float(data["alpha"]),
                           bias=np.asarray(data["bias"], dtype=np.float64),
                           weights=np.asarray(data["weights"], dtype=np.float64),
                           temperature=float(data["temperature"]), probe=np.asarray(data["probe"], dtype=np.float32),
                           min_confidence=float(data["min_confidence"]))
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as exc:  # not an .npz of a head
            msg = f"router head {str(path)!r} cannot be read: {exc}"
            raise ConfigurationError(msg) from exc
        shapes_ok = head.bias.shape == (len(head.tools),) and head.weights.shape == (len(head.tools), head.probe.size)
        if not shapes_ok or head.temperature <= 0 or not 0.0 <= head.min_confidence <= 1.0:
            msg = f"router head {str(path)!r} is inconsistent (shapes, temperature or min_confidence)"
            raise ConfigurationError(msg)
        return head


_LOADED: dict[str, RouterHead] = {}
_LOCK = threading.Lock()


def load_head(path: str | Path) -> RouterHead:
    """The head in ``path``, read once per process (keyed by the resolved path and its mtime)."""
    file = Path(path).expanduser().resolve()
    try:
        key = f"{file}:{file.stat().st_mtime_ns}"
    except OSError as exc:
        msg = f"router head {str(path)!r} cannot be read: {exc}"
        raise ConfigurationError(msg) from exc
    with _LOCK:
        if key not in _LOADED:
            _LOADED[key] = RouterHead.load(file)
        return _LOADED[key]


def resolve_head(choice: RouterHead | str | Path | None, probe: Callable[[], np.ndarray]) -> RouterHead | None:
    """The head a router decides with: ``choice`` when it was trained on this encoder, else None.

    ``probe()`` embeds :data:`PROBE` with the router's encoder (called only when there is a head).
    The packaged head may be absent (None); a head file the caller named must exist
    (ConfigurationError naming it, never silently ignored).
    """
    if choice is None:
        return None
    if not isinstance(choice, RouterHead):
        if Path(choice) == PACKAGED_HEAD and not PACKAGED_HEAD.is_file():
            return None
        choice = load_head(choice)
    return choice if choice.fits(probe()) else None
