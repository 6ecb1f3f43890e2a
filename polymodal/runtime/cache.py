"""One cache of loaded models per process: load once, share, place, and evict when memory is short.

Why one cache: two tools that wrap the same checkpoint (the captioner and the video summarizer's
keyframe captioner), or two agents in one process, must not load it twice (RELIABILITY T9); and
a GPU has room for only so many models, so the least recently used one makes way for the next.

The cache chooses the device (cuda > mps > cpu, or what the tool or ``POLYMODAL_DEVICE`` forces)
and the dtype (fp16 on a GPU, fp32 on the CPU, or ``POLYMODAL_DTYPE``), and hands both to the
tool's ``load``. Loading errors from transformers/diffusers become one ConfigurationError that
names the model and says how to provide it (RELIABILITY T4): see :mod:`polymodal.runtime.loading`.
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

from polymodal.errors import ConfigurationError, ResourceError

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

logger = logging.getLogger(__name__)
T = TypeVar("T")


_GPU_SIGNS = ("/proc/driver/nvidia", "/dev/nvidiactl", "/dev/kfd", "/dev/dxg")  # NVIDIA, ROCm, WSL2


def surely_cpu_only() -> bool:
    """True when this machine certainly has no CUDA/ROCm GPU, decided without importing torch.

    ``import torch`` costs 1-2 s and ~180 MB; a run on the offline profile (faster-whisper, ONNX OCR)
    never needs it, so asking torch whether there is a GPU would be most of that run's start-up. On
    Linux with no GPU driver in sight the answer is known; anywhere else (or once torch is loaded
    anyway) torch is asked.
    """
    if "torch" in sys.modules or not sys.platform.startswith("linux"):
        return False
    return not any(os.path.exists(sign) for sign in _GPU_SIGNS)


def pick_device(forced: str | None = None) -> str:
    """The device a model goes to: ``forced``, else ``POLYMODAL_DEVICE``, else cuda > mps > cpu."""
    choice = forced or os.environ.get("POLYMODAL_DEVICE") or "auto"
    if choice != "auto":
        return choice
    if surely_cpu_only():
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


_DEVICE = re.compile(r"(cpu|mps|cuda(:[0-9]+)?)")


def check_device(device: str, source: str = "device") -> str:
    """Refuse, before any work, a device this machine cannot use; return it unchanged otherwise.

    ``source`` names where the setting came from (``--device``, ``POLYMODAL_DEVICE``, a config file),
    so the message says what to change.

    Raises:
        ConfigurationError: an unknown device name (``tpu``), or cuda / mps on a machine without it.
    """
    if device in ("auto", "cpu"):
        return device
    if not _DEVICE.fullmatch(device):
        msg = f"{source} {device!r} is not a device: use cpu, cuda, cuda:N (N-th GPU) or mps"
        raise ConfigurationError(msg)
    import torch

    if device.startswith("cuda"):
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            build = "a CPU-only build" if torch.version.cuda is None else f"built for CUDA {torch.version.cuda}"
            msg = f"{source} {device!r}: this machine has no usable CUDA GPU (torch {torch.__version__}, {build}); "
            msg += "use cpu"
            raise ConfigurationError(msg)
        index = int(device.partition(":")[2] or 0)
        if index >= count:
            msg = f"{source} {device!r}: this machine has {count} CUDA GPU(s), cuda:0 to cuda:{count - 1}"
            raise ConfigurationError(msg)
    if device == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        msg = f"{source} 'mps': Apple's Metal backend is not available on this machine; use cpu"
        raise ConfigurationError(msg)
    return device


def pick_dtype(device: str) -> Any:
    """fp16 on an accelerator (half the memory, tensor cores), fp32 on the CPU (fp16 is slow there)."""
    import torch

    forced = os.environ.get("POLYMODAL_DTYPE")
    if forced:
        return getattr(torch, forced)
    return torch.float16 if device.startswith(("cuda", "mps")) else torch.float32


def is_out_of_memory(exc: BaseException) -> bool:
    """True for CUDA/MPS out-of-memory errors, whichever class the backend raised."""
    torch = sys.modules.get("torch")  # never imported just to ask: no torch, no CUDA OOM
    if isinstance(exc, MemoryError) or (torch is not None and isinstance(exc, torch.cuda.OutOfMemoryError)):
        return True
    return isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower()


def model_nbytes(bundle: Any) -> int:
    """Bytes of parameters and buffers of every torch module reachable from a bundle."""
    return sum(p.numel() * p.element_size() for module in _modules(bundle) for p in _tensors(module))


def _modules(obj: Any, depth: int = 0) -> Iterator[Any]:
    torch = sys.modules.get("torch")
    if torch is None:
        return  # a bundle with torch modules in it means torch was imported
    if isinstance(obj, torch.nn.Module):
        yield obj
    elif depth < 2:
        children = obj.values() if isinstance(obj, dict) else getattr(obj, "__dict__", {}).values()
        for child in children:
            yield from _modules(child, depth + 1)


def _tensors(module: Any) -> Iterator[Any]:
    yield from module.parameters()
    yield from module.buffers()


@dataclass
class _Entry:
    bundle: Any
    device: str
    nbytes: int
    label: str
    last_used: float


class ModelCache:
    """Loaded model bundles keyed by (tool key, device), least recently used first out.

    Args:
        budget_bytes: evict least recently used bundles when the total would exceed this.
            None means: 90 % of the GPU's memory on CUDA, no limit on the CPU.
    """

    def __init__(self, budget_bytes: int | None = None) -> None:
        self.budget_bytes = budget_bytes
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()
        self._lock = threading.RLock()
        self._load_lock = threading.Lock()
        self.loads = 0
        """How many times a loader actually ran (a test asserts models load once)."""
        self.evictions = 0
        """How many bundles were dropped to make room or free memory (a server's /metrics reports both)."""

    def get(
        self, key: str, loader: Callable[[str, Any], T], *, device: str | None = None, label: str = "",
        uses_torch: bool = True,
    ) -> T:
        """Return the bundle for ``key`` on the chosen device, loading it on first use only.

        ``loader(device, dtype)`` loads it; ``uses_torch=False`` (a CTranslate2 or ONNX model) hands it
        ``dtype=None`` instead of a torch dtype, so that torch is not imported for it.
        """
        dev = pick_device(device)
        full_key = (key, dev)
        with self._lock:
            entry = self._touch(full_key)
            if entry is not None:
                return entry.bundle  # type: ignore[no-any-return]
        # One load at a time: concurrent first calls wait for one load instead of loading twice,
        # and transformers' lazy imports are not thread-safe (two threads importing Auto classes
        # at once can fail with "cannot import name").
        with self._load_lock:
            with self._lock:
                entry = self._touch(full_key)
                if entry is not None:
                    return entry.bundle  # type: ignore[no-any-return]
            started = time.perf_counter()
            bundle = self._load(loader, dev, label or key, uses_torch)
            nbytes = model_nbytes(bundle)
            logger.info("loaded %s on %s in %.1f s (%.1f MB)", label or key, dev,
                        time.perf_counter() - started, nbytes / 1e6)
            with self._lock:
                self.loads += 1
                self._entries[full_key] = _Entry(bundle, dev, nbytes, label or key, time.monotonic())
                self._evict_over_budget(keep=full_key)
            return bundle

    def _load(self, loader: Callable[[str, Any], T], device: str, label: str, uses_torch: bool = True) -> T:
        """Run ``loader``; out of memory while loading is handled like out of memory in a forward pass (T3).

        The least recently used models on the same device are evicted (all of them: the size of
        the model being loaded is unknown until it has loaded), the allocator's cache is emptied,
        and the load is tried once more. If it runs out of memory again, ResourceError names the
        model and the device; the process and the models on other devices live on.
        """
        try:
            return loader(device, pick_dtype(device) if uses_torch else None)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
        # (leaving the except block dropped the error and, with its traceback, the half-built tensors)
        with self._lock:
            victims = [k for k in self._entries if k[1] == device]  # least recently used first
            for full_key in victims:
                self._drop(full_key)
        _empty_device_caches()
        logger.warning("out of memory loading %s on %s; evicted %d model(s), retrying once", label, device,
                       len(victims))
        try:
            return loader(device, pick_dtype(device) if uses_torch else None)
        except Exception as exc:
            if not is_out_of_memory(exc):
                raise
            msg = (f"out of memory on {device} while loading the model, even after evicting {len(victims)} other "
                   "model(s) and retrying once (free memory, use a smaller model or dtype, or another device)")
            raise ResourceError(label, msg) from exc

    def holds(self, key: str, device: str | None = None) -> bool:
        """Whether the bundle for ``key`` is loaded on the device ``get`` would choose."""
        with self._lock:
            return (key, pick_device(device)) in self._entries

    def _touch(self, full_key: tuple[str, str]) -> _Entry | None:
        entry = self._entries.get(full_key)
        if entry is not None:
            entry.last_used = time.monotonic()
            self._entries.move_to_end(full_key)
        return entry

    def _budget_for(self, device: str) -> int | None:
        if self.budget_bytes is not None:
            return self.budget_bytes
        env = os.environ.get("POLYMODAL_MEMORY_BUDGET_GB")
        if env:
            return int(float(env) * 1024**3)
        if device.startswith("cuda"):
            import torch

            return int(0.9 * torch.cuda.get_device_properties(torch.device(device)).total_memory)
        return None

    def _evict_over_budget(self, keep: tuple[str, str]) -> None:
        device = keep[1]
        budget = self._budget_for(device)
        if budget is None:
            return
        for full_key in list(self._entries):  # oldest first
            if self.used_bytes(device) <= budget:
                break
            if full_key != keep and full_key[1] == device:
                self._drop(full_key)

    def used_bytes(self, device: str | None = None) -> int:
        """Bytes held by cached bundles (on one device, or all)."""
        with self._lock:
            return sum(e.nbytes for e in self._entries.values() if device is None or e.device == device)

    def loaded(self) -> list[tuple[str, str]]:
        """Cached (key, device) pairs, least recently used first."""
        with self._lock:
            return list(self._entries)

    def _drop(self, full_key: tuple[str, str]) -> None:
        entry = self._entries.pop(full_key)
        self.evictions += 1
        logger.info("evicted %s from %s (%.1f MB)", entry.label, entry.device, entry.nbytes / 1e6)

    def free_memory(self, keep: str | None = None) -> None:
        """Evict every bundle but ``keep`` and empty the allocator's cache (the OOM path)."""
        with self._lock:
            for full_key in list(self._entries):
                if full_key[0] != keep:
                    self._drop(full_key)
        _empty_device_caches()

    def clear(self) -> None:
        """Drop every cached model."""
        self.free_memory(keep=None)


def inference_mode() -> AbstractContextManager[Any]:
    """``torch.inference_mode()`` for torch models; nothing for the others (no torch import for them)."""
    torch = sys.modules.get("torch")
    return torch.inference_mode() if torch is not None else nullcontext()


def _empty_device_caches() -> None:
    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()


_SHARED = ModelCache()
_SLOTS: dict[str, threading.BoundedSemaphore] = {}
_SLOTS_LOCK = threading.Lock()


def device_slot(device: str) -> threading.BoundedSemaphore:
    """The semaphore bounding how many model calls run at once on ``device`` (RELIABILITY T9).

    Many concurrent requests (a batch run, a server) must not pile every forward pass onto one GPU
    at once: past a couple, they only add memory pressure and contention. The bound is
    ``POLYMODAL_DEVICE_CONCURRENCY`` (default 2) per device, shared by every tool in the process.
    """
    with _SLOTS_LOCK:
        if device not in _SLOTS:
            limit = max(1, int(os.environ.get("POLYMODAL_DEVICE_CONCURRENCY", "2")))
            _SLOTS[device] = threading.BoundedSemaphore(limit)
        return _SLOTS[device]


def model_cache() -> ModelCache:
    """The process-wide cache every tool loads through."""
    return _SHARED
