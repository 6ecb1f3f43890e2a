"""A model a host can run that is not a ModelTool: only the HostedModel protocol, nothing to call back into.

Module-level, so a worker process can unpickle it (it gets the test process's ``sys.path``).
"""

from __future__ import annotations

import os
from typing import Any

from polymodal.runtime.calls import Progress


class Doubler:
    """Doubles numbers "where the model lives", reporting each item as progress; says which process ran it."""

    name = "doubler"
    model = "doubling"
    device: str | None = None
    own_worker = True
    ray_actor_options: dict[str, Any] | None = None

    def batch_signature(self) -> str:
        return "doubler|v1"

    def portable(self) -> Doubler:
        return self

    def run_here(self, prepared: list[Any], progress: Progress | None = None) -> list[Any]:
        outputs = []
        for index, value in enumerate(prepared):
            if progress is not None:
                progress(f"item {index}", (index + 1) / len(prepared))
            outputs.append((value * 2, os.getpid()))
        return outputs
