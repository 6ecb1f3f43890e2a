"""What every benchmark here shares: an offline environment and one way to time a call.

Importing this module sets the environment (before anything imports transformers, which reads it
at import) and puts the test bed's ``support`` package on the path, so benchmarks build the same
tiny checkpoints the tests use and need no model hub.
"""

from __future__ import annotations

import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

for _name, _value in {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_VERBOSITY": "error",
    "DIFFUSERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
}.items():
    os.environ.setdefault(_name, _value)

ROOT = Path(__file__).resolve().parents[1]
for _path in (ROOT / "tests", ROOT):
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))


def median_seconds(fn: Callable[[], object], repeats: int, *, warm: bool = False) -> float:
    """Median wall time of ``repeats`` calls; ``warm`` makes one untimed call first (loads, caches)."""
    if warm:
        fn()
    times = []
    for _ in range(max(1, repeats)):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


@contextmanager
def work_folder(prefix: str = "polymodal-bench-") -> Iterator[Path]:
    """A temporary folder for models and media, removed when the benchmark ends (even on failure)."""
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


class Mismatch(SystemExit):
    """The two sides of a comparison did different work: the ratio would be meaningless."""


def require_equal(what: str, a: object, b: object) -> None:
    """Stop the benchmark (exit 1, naming ``what``) unless both sides produced the same outputs."""
    if a != b:
        raise Mismatch(f"bench: {what}: the two sides' outputs differ, so no ratio is reported\n  {a!r}\n  {b!r}")


def require_close(what: str, a: Any, b: Any, tolerance: float) -> None:
    """Like :func:`require_equal` for arrays (or lists of them): same shapes, values within ``tolerance``."""
    import numpy as np

    pairs = list(zip(a, b, strict=True)) if isinstance(a, list | tuple) else [(a, b)]
    for index, (x, y) in enumerate(pairs):
        x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
        if x.shape != y.shape:
            raise Mismatch(f"bench: {what}[{index}]: shapes differ ({x.shape} vs {y.shape}), so no ratio is reported")
        worst = float(np.abs(x - y).max()) if x.size else 0.0
        if worst > tolerance:
            raise Mismatch(f"bench: {what}[{index}]: outputs differ by {worst:g} (> {tolerance:g}), so no ratio is "
                           "reported")


@dataclass
class Spread:
    """A value measured on several repeats: its median and its range (load on a shared machine moves it)."""

    values: list[float]

    @property
    def median(self) -> float:
        return statistics.median(self.values)

    def __str__(self) -> str:
        return f"{self.median:.2f} ({min(self.values):.2f}-{max(self.values):.2f})"


def paired(first: Callable[[], object], second: Callable[[], object], repeats: int) -> tuple[Spread, Spread, Spread]:
    """Time two sides interleaved (so load drift hits both), after one untimed call each.

    Returns the seconds of each side and the per-repeat ratio ``first / second``, each with its
    spread: a ratio that swings with machine load is reported as its median and range, not one run.
    """
    first(), second()
    a: list[float] = []
    b: list[float] = []
    for _ in range(max(1, repeats)):
        for fn, times in ((first, a), (second, b)):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
    return Spread(a), Spread(b), Spread([x / y for x, y in zip(a, b, strict=True)])


def texts(outputs: Sequence[Any]) -> list[str]:
    """The ``content`` of each ToolOutput (what a comparison of two runs of a tool looks at)."""
    return [getattr(o, "content", o) for o in outputs]


def build_base_blip(root: Path) -> Path:
    """A random BLIP captioner with the shape of Salesforce/blip-image-captioning-base."""
    import torch
    from support.tiny_models import _blip_processor
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipImageProcessorPil, BlipProcessor

    torch.manual_seed(0)
    tok = _blip_processor().tokenizer
    config = BlipConfig(
        text_config=dict(vocab_size=len(tok), hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                         intermediate_size=3072, max_position_embeddings=512, bos_token_id=tok.bos_token_id,
                         pad_token_id=tok.pad_token_id, sep_token_id=tok.sep_token_id,
                         eos_token_id=tok.sep_token_id),
        vision_config=dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072,
                           image_size=384, patch_size=16),
        projection_dim=512,
    )
    out = root / "blip-base-random"
    BlipForConditionalGeneration(config).eval().save_pretrained(out)
    BlipProcessor(image_processor=BlipImageProcessorPil(size={"height": 384, "width": 384}),
                  tokenizer=tok).save_pretrained(out)
    return out
