"""What the router compares a request with: each tool's anchor texts, and their embeddings kept on disk.

A tool's anchors are its description, the description's sentences and the example requests it
quotes ('what is in this photo'). Embedding the anchors of the ten built-in tools is most of
the router's first-request cost (about 1,600 tokens, over a second of CPU), and the result
only changes when a description or the model does, so it is saved under
``$POLYMODAL_CACHE/router/`` (default ``~/.cache/polymodal``) keyed by both, and read back by
the next process in milliseconds. A cache that cannot be written is skipped, never an error.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from polymodal.packaged import cache_dir

__all__ = ["cached_embeddings", "model_identity", "tool_anchors"]

logger = logging.getLogger(__name__)
_NEGATIVE = re.compile(r"^\s*(not|never|do not|don't)\b", re.I)
_QUOTED_EXAMPLE = re.compile(r"""(?:^|(?<=[\s:(]))'([^']{2,}?)'(?=$|[\s.,!?;:)])""")


def tool_anchors(name: str, description: str) -> list[str]:
    """What a request is compared with: the description, its sentences and the examples it quotes.

    Sentences that say what a tool is NOT for ("Not for questions about details") are left out:
    they mention exactly the requests that should go elsewhere.
    """
    text = " ".join(description.split())
    anchors = [f"{name.replace('_', ' ')}: {text}"]
    for sentence in re.split(r"(?<=[.!?])\s+", text):
        if sentence and not _NEGATIVE.match(sentence):
            anchors.append(sentence)
    anchors.extend(m.group(1).strip() for m in _QUOTED_EXAMPLE.finditer(text) if "..." not in m.group(1))
    return list(dict.fromkeys(anchors))


def model_identity(model: str) -> str:
    """The model as a cache key: a folder by its path and its weights' size and age, else the id."""
    folder = Path(model).expanduser()
    if not folder.is_dir():
        return model
    stamps = [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}"
              for p in sorted(folder.glob("*.safetensors")) + sorted(folder.glob("*.bin"))]
    return f"{folder.resolve()}|{'|'.join(stamps)}"


def cached_embeddings(identity: str, texts: Sequence[str], embed: Callable[[Sequence[str]], np.ndarray]) -> np.ndarray:
    """``embed(texts)``, read from the disk cache when this model embedded these texts before."""
    digest = hashlib.sha256("\x1f".join([identity, *texts]).encode()).hexdigest()[:32]
    path = cache_dir() / "router" / f"anchors-{digest}.npy"
    try:
        stored = np.load(path, allow_pickle=False)
        if stored.shape[0] == len(texts) and stored.dtype == np.float32:
            return stored
    except (OSError, ValueError):
        pass
    vectors = np.asarray(embed(texts), dtype=np.float32)
    try:  # atomically: a concurrent reader sees the old file or the whole new one
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".anchors-", suffix=".npy", dir=path.parent)
        with os.fdopen(fd, "wb") as fp:
            np.save(fp, vectors, allow_pickle=False)
        os.replace(tmp, path)
    except OSError as exc:
        logger.debug("router anchors not cached at %s: %s", path, exc)
    return vectors
