"""Sentence encoders for the router: BERT in numpy where it can, sentence-transformers otherwise.

The router embeds a few short sentences per request with a small model (MiniLM: 6 layers, 384
wide). Through sentence-transformers that costs importing torch, transformers and
sentence-transformers first: about 3 s and 300 MB on every ``polymodal run``, even on the offline
profile where no tool uses torch at all. The forward pass of a BERT sentence encoder is a dozen
matrix products, so :class:`NumpyBertEncoder` runs it in numpy over the checkpoint's safetensors
file, memory-mapped (no copy), with the checkpoint's own fast tokenizer (``tokenizer.json``
through ``tokenizers``). Its embeddings equal sentence-transformers' to float32 rounding (a test
compares them); it loads in a fraction of a second.

It covers what the router's models are: a local sentence-transformers folder whose model is BERT
(``model_type: bert``, GELU, absolute positions) with mean pooling, float32 or float16 weights
and a ``tokenizer.json``. Anything else (a hub id, another architecture or pooling, a forced
device) goes through sentence-transformers and the shared model cache.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

__all__ = ["Encoder", "NumpyBertEncoder", "numpy_compatible"]


class Encoder(Protocol):
    """What the router needs from a sentence encoder."""

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One L2-normalised float32 row per text."""
        ...


_DTYPES = {"F32": np.float32, "F16": np.float16}
_MAX_TOKENS = 256
_BATCH = 8  # texts per forward pass, sorted by length: padding stays small


def numpy_compatible(folder: str | Path) -> bool:
    """True when ``folder`` is a BERT sentence-transformers checkpoint :class:`NumpyBertEncoder` runs."""
    root = Path(folder).expanduser()
    try:
        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        modules = json.loads((root / "modules.json").read_text(encoding="utf-8"))
        pooling_dir = next(m["path"] for m in modules if m["type"].endswith(".Pooling"))
        pooling = json.loads((root / pooling_dir / "config.json").read_text(encoding="utf-8"))
        header = _header(root / "model.safetensors")
    except (OSError, ValueError, KeyError, StopIteration, TypeError, struct.error):
        return False
    modes = {k: v for k, v in pooling.items() if k.startswith("pooling_mode")}
    return (
        config.get("model_type") == "bert"
        and config.get("hidden_act") == "gelu"
        and config.get("position_embedding_type", "absolute") == "absolute"
        and modes.get("pooling_mode_mean_tokens") is True
        and not any(v for k, v in modes.items() if k != "pooling_mode_mean_tokens")
        and all(m["type"].rsplit(".", 1)[-1] in ("Transformer", "Pooling", "Normalize") for m in modules)
        and all(t["dtype"] in _DTYPES for k, t in header.items() if k.endswith(".weight") or k.endswith(".bias"))
        and (root / "tokenizer.json").is_file()
    )


def _header(path: Path) -> dict[str, Any]:
    with open(path, "rb") as fp:
        (size,) = struct.unpack("<Q", fp.read(8))
        header: dict[str, Any] = json.loads(fp.read(size))
    header.pop("__metadata__", None)
    header["__offset__"] = {"dtype": "", "data_offsets": [8 + size, 8 + size]}
    return header


class NumpyBertEncoder:
    """A BERT sentence encoder (mean pooling, L2-normalised) computed in numpy; load with :meth:`load`."""

    def __init__(self, folder: Path, weights: dict[str, np.ndarray], config: dict[str, Any], tokenizer: Any) -> None:
        self.folder = folder
        self.weights = weights
        self.config = config
        self.tokenizer = tokenizer

    @classmethod
    def load(cls, folder: str | Path) -> NumpyBertEncoder:
        """Read the encoder of ``folder`` (check :func:`numpy_compatible` first).

        Not cached here: the router keeps one per folder for the process, with its embeddings.
        """
        return cls._read(Path(folder).expanduser().resolve())

    @classmethod
    def _read(cls, root: Path) -> NumpyBertEncoder:
        from tokenizers import Tokenizer

        config = json.loads((root / "config.json").read_text(encoding="utf-8"))
        limit = _MAX_TOKENS
        st_config = root / "sentence_bert_config.json"
        if st_config.is_file():
            limit = int(json.loads(st_config.read_text(encoding="utf-8")).get("max_seq_length", limit))
        tokenizer = Tokenizer.from_file(str(root / "tokenizer.json"))
        tokenizer.enable_truncation(min(limit, int(config["max_position_embeddings"])))
        tokenizer.no_padding()
        return cls(root, _mapped_weights(root / "model.safetensors"), config, tokenizer)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One normalised row per text; texts of similar length are batched together (little padding)."""
        out = np.zeros((len(texts), int(self.config["hidden_size"])), dtype=np.float32)
        encodings = self.tokenizer.encode_batch(list(texts)) if texts else []
        order = sorted(range(len(encodings)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(order), _BATCH):
            rows = order[start:start + _BATCH]
            out[rows] = self._embed_batch([encodings[i].ids for i in rows])
        return out

    def _embed_batch(self, token_ids: Sequence[Sequence[int]]) -> np.ndarray:
        length = max(len(ids) for ids in token_ids)
        ids = np.zeros((len(token_ids), length), dtype=np.int64)
        mask = np.zeros((len(token_ids), length), dtype=np.float32)
        for row, tokens in enumerate(token_ids):
            ids[row, : len(tokens)] = tokens
            mask[row, : len(tokens)] = 1.0
        hidden = self._forward(ids, mask)
        pooled = (hidden * mask[..., None]).sum(axis=1) / np.maximum(mask.sum(axis=1, keepdims=True), 1.0)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)

    def _forward(self, ids: np.ndarray, mask: np.ndarray) -> np.ndarray:
        w, config = self.weights, self.config
        eps = float(config["layer_norm_eps"])
        heads = int(config["num_attention_heads"])
        batch, length = ids.shape
        width = int(config["hidden_size"])
        size = width // heads
        x = (w["embeddings.word_embeddings.weight"][ids] + w["embeddings.position_embeddings.weight"][:length]
             + w["embeddings.token_type_embeddings.weight"][0])
        x = _layer_norm(x, w["embeddings.LayerNorm.weight"], w["embeddings.LayerNorm.bias"], eps)
        blocked = ((1.0 - mask) * -1e9)[:, None, None, :]  # padding takes no attention

        def split(t: np.ndarray) -> np.ndarray:
            return t.reshape(batch, length, heads, size).transpose(0, 2, 1, 3)

        for layer in range(int(config["num_hidden_layers"])):
            p = f"encoder.layer.{layer}."
            q = split(_linear(x, w, p + "attention.self.query"))
            k = split(_linear(x, w, p + "attention.self.key"))
            v = split(_linear(x, w, p + "attention.self.value"))
            scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(size) + blocked
            scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
            scores /= scores.sum(axis=-1, keepdims=True)
            context = (scores @ v).transpose(0, 2, 1, 3).reshape(batch, length, width)
            x = _layer_norm(_linear(context, w, p + "attention.output.dense") + x,
                            w[p + "attention.output.LayerNorm.weight"], w[p + "attention.output.LayerNorm.bias"], eps)
            inner = _gelu(_linear(x, w, p + "intermediate.dense"))
            x = _layer_norm(_linear(inner, w, p + "output.dense") + x,
                            w[p + "output.LayerNorm.weight"], w[p + "output.LayerNorm.bias"], eps)
        return x


def _mapped_weights(path: Path) -> dict[str, np.ndarray]:
    """The checkpoint's tensors as read-only memory maps (float16 ones converted to float32)."""
    header = _header(path)
    start = header.pop("__offset__")["data_offsets"][0]
    weights: dict[str, np.ndarray] = {}
    for name, entry in header.items():
        if entry["dtype"] not in _DTYPES:
            continue  # position_ids (int64) and the like: not weights
        begin, end = entry["data_offsets"]
        dtype = _DTYPES[entry["dtype"]]
        shape = tuple(entry["shape"])
        array = np.memmap(path, dtype=dtype, mode="r", offset=start + begin, shape=shape) if end > begin else (
            np.zeros(shape, dtype=dtype))
        key = name.removeprefix("bert.")
        weights[key] = np.asarray(array, dtype=np.float32) if dtype is not np.float32 else array
    return weights


def _linear(x: np.ndarray, weights: dict[str, np.ndarray], name: str) -> np.ndarray:
    return x @ weights[name + ".weight"].T + weights[name + ".bias"]


def _layer_norm(x: np.ndarray, weight: np.ndarray, bias: np.ndarray, eps: float) -> np.ndarray:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * weight + bias


def _gelu(x: np.ndarray) -> np.ndarray:
    """BERT's exact GELU, x * Phi(x), with erf from Abramowitz & Stegun 7.1.26 (error < 1.5e-7)."""
    z = np.abs(x) * (1.0 / math.sqrt(2.0))
    t = 1.0 / (1.0 + 0.3275911 * z)
    poly = ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) * t
    erf = np.sign(x) * (1.0 - poly * np.exp(-z * z))
    return 0.5 * x * (1.0 + erf)
