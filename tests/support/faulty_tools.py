"""Model tools that misbehave on request, for testing where model work runs (polymodal.runtime.hosts).

Module-level classes, so that a worker process or a Ray actor can import them by name. The model
is a real (tiny) torch module; the misbehaviour happens inside ``forward``, where a real model's
native code would hang or crash: ``"sleep:N"`` blocks N seconds, ``"abort"`` calls ``os.abort()``,
``"segv"`` sends the process SIGSEGV; ``"progress:N"`` reports N steps of progress, as a long model
call does. Any other text is echoed with the worker's PID.
"""

from __future__ import annotations

import os
import signal
import time
from typing import Any

from pydantic import BaseModel, ConfigDict

from polymodal.tools.base import ModelTool, ToolOutput, report_progress


class FaultyArgs(BaseModel):
    """Arguments of the faulty tools."""

    model_config = ConfigDict(extra="forbid")

    text: str


class Faulty(ModelTool):
    """Echoes its text, or sleeps, aborts or segfaults inside forward when told to."""

    name: str = "faulty"
    description: str = "echo the text (or misbehave on request)"
    args_schema: type[BaseModel] = FaultyArgs
    model: str = "faulty-linear"
    device: str | None = "cpu"
    micro_batching: bool | None = False

    def load(self, device: str, dtype: Any) -> Any:
        import torch

        return torch.nn.Linear(2, 2).to(device)

    def prepare(self, inputs: Any) -> list[str]:
        return [str(item["text"]) for item in inputs]

    def encode(self, bundle: Any, prepared: list[str]) -> list[str]:
        return prepared

    def forward(self, bundle: Any, encoded: list[str]) -> list[str]:
        for text in encoded:
            if text.startswith("sleep:"):
                time.sleep(float(text.split(":", 1)[1]))
            elif text == "abort":
                os.abort()
            elif text == "segv":
                os.kill(os.getpid(), signal.SIGSEGV)
            elif text.startswith("progress:"):
                steps = int(text.split(":", 1)[1])
                for done in range(1, steps + 1):
                    report_progress(f"step {done} of {steps} in {os.getpid()}", done / steps)
        return encoded

    def decode(self, bundle: Any, outputs: list[str], prepared: list[str]) -> list[ToolOutput]:
        return [ToolOutput(content=f"{text} from {os.getpid()}", artifact=os.getpid()) for text in outputs]


class OtherFaulty(Faulty):
    """The same, under another name: a sibling step on the same device's worker."""

    name: str = "other"
