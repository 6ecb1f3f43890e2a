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
