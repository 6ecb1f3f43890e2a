"""What every benchmark here shares: an offline environment and one way to time a call.

Importing this module sets the environment (before anything imports transformers, which reads it
at import) and puts the test bed's ``support`` package on the path, so benchmarks build the same
tiny checkpoints the tests use and need no model hub.
"""

from __future__ import annotations

import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

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
