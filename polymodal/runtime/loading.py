"""Load a model, or say in one line which model is missing, what is wrong and how to provide it.

Models load lazily, deep inside transformers, diffusers, sentence-transformers or faster-whisper,
and each reports a missing or broken model its own way (an ``OSError`` about a hub URL, a
``ValueError`` about a config, a JSON traceback, a minute of retries). Everything here turns those
into one :class:`~polymodal.errors.ConfigurationError` naming the model (RELIABILITY T4):

- a hub id when the hub cannot be reached fails at once: the hub is probed once per process
  (:mod:`polymodal.hub`), and a failed hub load is remembered, so asking again costs nothing;
- a local folder is checked before anything loads: missing, empty, an unreadable or invalid
  ``config.json``, no weight file; a folder that still fails to load is reported as broken;
- library chatter while loading (``Loading weights`` progress bars, "couldn't connect" warnings)
  is silenced: the error, if any, says it better.
"""

from __future__ import annotations

import importlib
import json
import pickle
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from polymodal.errors import ConfigurationError

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

T = TypeVar("T")

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".onnx", ".gguf", ".msgpack", ".h5", ".npz")
"""Files that hold weights, in any format a supported library reads (searched two folders deep)."""

_failed: dict[str, str] = {}
_failed_lock = threading.Lock()


def looks_like_path(model: str) -> bool:
    """A hub id is ``name`` or ``org/name``; anything else (``./x``, ``/x``, ``a/b/c``) is a folder."""
    return model.startswith((".", "/", "~", "\\")) or model.count("/") > 1 or "\\" in model


def check_available(what: str, model: str) -> None:
    """Fail now when ``model`` certainly cannot be loaded, before any model library is imported.

    A remembered hub failure, a broken folder, or a hub id that is not in the local hub cache while
    the hub is off (``HF_HUB_OFFLINE``) or unreachable (probed here, once per process) is a
    ConfigurationError at once: a missing model costs no import of torch, transformers or diffusers.

    Raises:
        ConfigurationError: as :func:`load_checked`.
    """
    with _failed_lock:
        remembered = _failed.get(model)
    if remembered is not None:
        raise ConfigurationError(remembered)
    if looks_like_path(model):
        problem = folder_problem(Path(model).expanduser())
        if problem:
            raise ConfigurationError(_folder_message(what, model, problem))
        return
    from polymodal import hub

    if not hub.status().reachable and not _in_hub_cache(model):  # the first hub load probes it (bounded)
        _remember_and_raise(model, _hub_message(what, model, None))


def load_checked(what: str, model: str, load: Callable[[], T]) -> T:
    """Run a ``from_pretrained``-style ``load`` of ``model`` for ``what`` (a tool name, "router", ...).

    Raises:
        ConfigurationError: the model cannot be had. For a hub id: not in the local cache while the
            hub is offline or unreachable (remembered: the next call for it fails at once), or not on
            the hub. For a folder: missing, empty, without weights, with a bad ``config.json``, or
            failing to load. The message names the model and how to provide it.
    """
    check_available(what, model)
    with loading(what, model):
        try:
            return load()
        except (OSError, ValueError) as exc:
            if looks_like_path(model) or not _is_not_found(exc):
                raise
            _remember_and_raise(model, _hub_message(what, model, exc), exc)


def _remember_and_raise(model: str, message: str, cause: BaseException | None = None) -> NoReturn:
    """A hub model that cannot be had stays so for this process: the next ask fails at once."""
    with _failed_lock:
        _failed[model] = message
    raise ConfigurationError(message) from cause


def _in_hub_cache(model: str) -> bool:
    """Whether the local hub cache holds anything of ``model`` (a repo id): then its loader decides."""
    from huggingface_hub import constants

    snapshots = Path(constants.HF_HUB_CACHE) / f"models--{model.replace('/', '--')}" / "snapshots"
    try:
        return any(snapshots.iterdir())
    except OSError:
        return False


def forget_failures() -> None:
    """Forget remembered hub failures (after downloading a model while the process runs)."""
    with _failed_lock:
        _failed.clear()


@contextmanager
def loading(what: str, model: str, *, uses_transformers: bool = False) -> Iterator[None]:
    """Silence progress bars and hub warnings while loading; report a local folder that fails as broken.

    Used around a tool's whole ``load`` (the processor and the weights), so that a folder whose
    weights are cut off or unreadable is a ConfigurationError naming it, not a library traceback.
    ``uses_transformers``: the load imports transformers (quiet it from the start).
    """
    with _quiet_libraries(uses_transformers):
        try:
            yield
        except (OSError, ValueError, EOFError, pickle.UnpicklingError) as exc:
            if not looks_like_path(model):
                raise
            raise ConfigurationError(_folder_message(what, model, f"cannot be loaded ({_first_line(exc)})")) from exc
        except Exception as exc:
            if not looks_like_path(model) or "safetensor" not in type(exc).__name__.lower():
                raise
            raise ConfigurationError(_folder_message(what, model, f"has damaged weights ({exc})")) from exc


def folder_problem(folder: Path) -> str | None:
    """What makes ``folder`` unusable as a model checkpoint, or None when it looks loadable."""
    if not folder.exists():
        return "does not exist"
    if not folder.is_dir():
        return None  # a single-file model (a .gguf): its loader reads it
    try:
        entries = list(folder.iterdir())
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    if not entries:
        return "is empty"
    for name in ("config.json", "model_index.json"):
        config = folder / name
        if not config.exists():
            continue
        try:
            data = json.loads(config.read_text(encoding="utf-8"))
        except OSError as exc:
            return f"has an unreadable {name} ({exc.strerror or exc})"
        except (ValueError, UnicodeDecodeError) as exc:
            return f"has a {name} that is not valid JSON ({exc})"
        if not isinstance(data, dict):
            return f"has a {name} that is not a JSON object"
    if not _has_weights(folder, depth=2):
        return f"holds no weights (no {', '.join('*' + s for s in WEIGHT_SUFFIXES[:3])}, ... file)"
    return None


def _has_weights(folder: Path, depth: int) -> bool:
    try:
        entries = list(folder.iterdir())
    except OSError:
        return False
    if any(e.suffix in WEIGHT_SUFFIXES and e.is_file() for e in entries):
        return True
    return depth > 0 and any(e.is_dir() and _has_weights(e, depth - 1) for e in entries)


def _folder_message(what: str, model: str, problem: str) -> str:
    return (f"{what}: model folder {model!r} {problem}. Give a complete checkpoint folder (what save_pretrained "
            "writes: config.json and the weights), e.g. from `hf download ORG/NAME --local-dir FOLDER` on a machine "
            "with hub access")


def _hub_message(what: str, model: str, exc: BaseException | None) -> str:
    from polymodal import hub

    state = hub.status()
    if state.reachable and exc is not None and not hub.is_connection_error(exc):
        where = f"the hub has no such model ({_first_line(exc)})"
    else:
        if exc is not None and hub.is_connection_error(exc):
            hub.go_offline(_first_line(exc))
        state = hub.status()
        where = f"the hub is unreachable ({state.detail})" if state.probed else f"the hub is {state.detail}"
    return (f"{what}: model {model!r} is not a local folder, not in the local hub cache, and {where}. Download "
            f"it once (`hf download {model}`) on a machine with hub access, or pass model=<a local folder>")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _is_not_found(exc: BaseException) -> bool:
    text = str(exc).lower()
    markers = ("couldn't connect", "does not appear to have", "not a valid model identifier",
               "is not a local folder", "no such file", "offline", "not found", "can't load",
               "not fully cached locally",  # diffusers' wording for a hub id while offline
               "cannot find the requested files", "repository not found", "name or service not known")
    return any(marker in text for marker in markers)


@contextmanager
def _quiet_libraries(import_transformers: bool) -> Iterator[None]:
    """No ``Loading weights`` bars, no "couldn't connect" warnings: our messages say what matters.

    transformers and diffusers are quieted when already imported (transformers also when
    ``import_transformers``: the load will import it). Neither is imported otherwise: an ONNX or
    CTranslate2 model must not pay a second of transformers' import to be quiet. Only the libraries'
    own bars are turned off (their private switch: ``Loading weights``, ``Loading pipeline
    components``): a real download (huggingface_hub's bar) keeps its progress bar.
    """
    quieted: list[tuple[Any, int]] = []
    for name in ("transformers", "diffusers"):
        if name in sys.modules or (name == "transformers" and import_transformers):
            try:
                lib_logging = importlib.import_module(f"{name}.utils.logging")
            except ImportError:
                continue
            quieted.append((lib_logging, lib_logging.get_verbosity()))
            lib_logging.set_verbosity_error()
    bars = [(lib_logging, lib_logging._tqdm_active) for lib_logging, _ in quieted
            if isinstance(getattr(lib_logging, "_tqdm_active", None), bool)]
    for lib_logging, _ in bars:
        lib_logging._tqdm_active = False
    try:
        yield
    finally:
        for lib_logging, verbosity in quieted:
            lib_logging.set_verbosity(verbosity)
        for lib_logging, active in bars:
            lib_logging._tqdm_active = active
