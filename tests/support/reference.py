"""Input-sensitive copies of the tiny checkpoints, for comparing a tool with its model's own output.

The tiny random checkpoints are initialised like real ones (weights of std 0.02), which at a
hidden size of 16-32 drowns the input: the tiny BLIP writes the same caption for every image and
the tiny Whisper the same tokens for every sound. A test that compares a tool's output with the
model's own ``generate`` on such a checkpoint cannot tell a tool that passes the wrong input (or
none) from a correct one. Re-drawing every weight matrix with a fan-in-scaled std (as Kaiming
initialisation does) keeps the architecture, the files and the loading path, and makes the output
depend on the input; :func:`distinct` lets a test prove that it does for the inputs it uses.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def sensitive_copy(source: Path, target: Path, *, gain: float = 1.0, seed: int = 0) -> Path:
    """Copy the checkpoint folder ``source`` to ``target`` with every weight matrix redrawn.

    Each floating-point tensor of two or more dimensions becomes ``randn * gain / sqrt(fan_in)``
    (seeded); biases and norms are kept. Every ``*.safetensors`` file below ``source`` is rewritten,
    so a diffusers folder of several models works too.
    """
    import torch
    from safetensors.torch import load_file, save_file

    if target.exists():
        return target
    partial = target.with_name(target.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial)
    generator = torch.Generator().manual_seed(seed)
    for weights in sorted(partial.rglob("*.safetensors")):
        tensors = load_file(weights)
        for name, tensor in tensors.items():
            if tensor.is_floating_point() and tensor.ndim >= 2:
                fan_in = math.prod(tensor.shape[1:])
                drawn = torch.randn(tensor.shape, generator=generator) * (gain / math.sqrt(fan_in))
                tensors[name] = drawn.to(tensor.dtype)
        save_file(tensors, weights, metadata={"format": "pt"})
    partial.rename(target)
    return target


def distinct(outputs: Iterable[Any]) -> int:
    """How many different outputs there are (by ``repr``): the proof that the inputs mattered."""
    return len({repr(output) for output in outputs})
