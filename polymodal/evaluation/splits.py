"""Which cases a planner may be tuned on, and which it is only ever scored on.

A planner tuned on the requests it is scored on reports how well it remembers them, not how well it
plans. So every case belongs to one of two parts, by a fixed rule that needs no list kept by hand:

- a case that names its part (``"split": "tuning"`` or ``"held-out"`` on its line) is in that part
  (the fresh requests in ``examples/eval/fresh_holdout.jsonl`` are all ``held-out``);
- any other case is **held-out** when the SHA-256 of ``"polymodal-split-v1:" + id`` is, as a number,
  ``0, 1 or 2 modulo 8`` (3 cases in 8), else **tuning**.

The rule reads only the id, so a case keeps its part whatever file it sits in, and a new case lands
in a part before anyone sees how a planner does on it. Tuning (the learned router head, the LLM
planner's few-shot examples, any threshold) reads only the tuning part; figures are reported per
part (``polymodal eval --split``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from typing import Literal

from polymodal.errors import ConfigurationError

__all__ = ["SPLITS", "Split", "SplitName", "in_split", "split_of"]

Split = Literal["tuning", "held-out"]
SplitName = Literal["tuning", "held-out", "all"]
SPLITS: tuple[SplitName, ...] = ("tuning", "held-out", "all")
_SALT = "polymodal-split-v1:"
_HELD_OUT = frozenset({0, 1, 2})
_MODULUS = 8


def split_of(case_id: str, declared: str = "") -> Split:
    """The part a case belongs to: the one it declares, else the one its id hashes to."""
    if declared:
        if declared not in ("tuning", "held-out"):
            msg = f"case {case_id!r}: split {declared!r} is neither 'tuning' nor 'held-out'"
            raise ConfigurationError(msg)
        return "tuning" if declared == "tuning" else "held-out"
    digest = int(hashlib.sha256((_SALT + case_id).encode("utf-8")).hexdigest(), 16)
    return "held-out" if digest % _MODULUS in _HELD_OUT else "tuning"


def in_split(parts: Iterable[Split], wanted: SplitName) -> list[bool]:
    """For each case's part, whether it is in ``wanted`` (``all`` takes every case)."""
    if wanted not in SPLITS:
        msg = f"--split expects tuning, held-out or all, got {wanted!r}"
        raise ConfigurationError(msg)
    return [wanted == "all" or part == wanted for part in parts]
