"""Safe files: resolve inside the allowed roots, stat, open without following links, hash, capped."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import time
from pathlib import Path
from typing import IO

from polymodal.errors import AttachmentError, MediaLimitError
from polymodal.media._kinds import _HEAD, MediaLimits, _short
from polymodal.media._probing import _Stamp

__all__: list[str] = []


def _resolve_inside(given: Path, source: str, limits: MediaLimits) -> Path:
    """Resolve symlinks, then refuse anything outside every allowed root, before opening it (A1/A2)."""
    try:
        resolved = given.resolve()
        roots = None if limits.allowed_roots is None else [Path(r).resolve() for r in limits.allowed_roots]
    except (OSError, RuntimeError, ValueError) as exc:  # symlink loops, NUL in the path
        raise AttachmentError(source, f"cannot resolve path ({_short(exc)})") from exc
    if roots is not None and not any(resolved.is_relative_to(root) for root in roots):
        raise AttachmentError(source, "is outside the allowed folders (MediaLimits.allowed_roots)")
    return resolved


def _byte_cap(source: str, size: int, limits: MediaLimits) -> None:
    if size > limits.max_bytes:
        msg = (f"is {size:,} bytes, over the {limits.max_bytes:,} byte cap "
               "(raise it with MediaLimits(max_bytes=...))")
        raise MediaLimitError(source, msg)


def _check_file(resolved: Path, source: str, limits: MediaLimits) -> None:
    """Stat before opening: missing, directories, FIFOs and devices (/dev/zero) are refused."""
    try:
        st = resolved.stat()
    except FileNotFoundError as exc:
        raise AttachmentError(source, "no such file") from exc
    except (OSError, ValueError) as exc:
        raise AttachmentError(source, f"cannot access file ({_short(exc)})") from exc
    if stat.S_ISDIR(st.st_mode):
        raise AttachmentError(source, "is a directory, not a file")
    if not stat.S_ISREG(st.st_mode):
        raise AttachmentError(source, "is not a regular file")
    _byte_cap(source, st.st_size, limits)
    if st.st_size == 0:
        raise AttachmentError(source, "is empty (0 bytes)")


_SETTLED_NS = 2_000_000_000  # file times tick coarsely: a change this recent may hide a second one
_OPEN_FLAGS = (os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
               | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))


def _open_regular(path: Path, source: str) -> tuple[IO[bytes], os.stat_result]:
    """Open a regular file for reading, never through a symlink in its last component.

    ``O_NONBLOCK`` keeps a FIFO from blocking the open (it is refused just after, from ``fstat``);
    directories and devices (``/dev/zero``) are refused the same way, before any byte is read.
    """
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError as exc:
        raise AttachmentError(source, "no such file") from exc
    except (OSError, ValueError) as exc:  # ValueError: NUL in the path
        if getattr(exc, "errno", None) in (errno.ELOOP, errno.EMLINK):
            raise AttachmentError(source, "is now a symbolic link (the file was replaced after it was checked)") \
                from exc
        raise AttachmentError(source, f"cannot read file ({_short(exc)})") from exc
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise AttachmentError(source, "is a directory, not a file")
        if not stat.S_ISREG(st.st_mode):
            raise AttachmentError(source, "is not a regular file")
        return os.fdopen(fd, "rb"), st
    except BaseException:
        os.close(fd)
        raise


def _stamp_of(st: os.stat_result) -> _Stamp:
    """What identifies one version of one file: device, inode, size, modification and change times."""
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _settled(st: os.stat_result) -> _Stamp | None:
    """The file's stamp, or None when it changed too recently for its times to prove it unchanged later."""
    recent = time.time_ns() - max(st.st_mtime_ns, st.st_ctime_ns) < _SETTLED_NS
    return None if recent else _stamp_of(st)


def _reread(fp: IO[bytes]) -> IO[bytes]:
    """A second handle on ``fp``'s file, at its start; closing it leaves ``fp`` open."""
    fp.seek(0)
    return os.fdopen(os.dup(fp.fileno()), "rb")


def _hash_stream(fp: IO[bytes], source: str, limits: MediaLimits) -> tuple[str, bytes, int]:
    """Stream the sha256 of an open file from its start; the head is kept for sniffing.

    The cap is enforced again while reading, since the file may have grown after the stat.
    """
    digest, size = hashlib.sha256(), 0
    try:
        fp.seek(0)
        head = fp.read(_HEAD)
        chunk = head
        while chunk:
            digest.update(chunk)
            size += len(chunk)
            _byte_cap(source, size, limits)
            chunk = fp.read(1 << 20)
    except OSError as exc:
        raise AttachmentError(source, f"cannot read file ({_short(exc)})") from exc
    return digest.hexdigest(), head, size
