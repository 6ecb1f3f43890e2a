"""A results file: one durable JSON line per finished job, and reading it back after a crash.

``polymodal batch`` appends each job's record (its ``id``, ``ok``, ``error``, then
:meth:`Reply.to_record <polymodal.agent.reply.Reply.to_record>`, the one shape of a reply's
record) as one fsynced line; a re-run and the CLI read the file back here: which ids are done,
which failed. A crash leaves at most a torn last line, which is cut off (RELIABILITY R1/R2).
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from polymodal.agent import Reply

__all__ = [
    "append_line",
    "completed_ids",
    "drop_failed",
    "encode_record",
    "failed_ids",
    "recorded_results",
    "reply_record",
]


def completed_ids(output: Path) -> set[str]:
    """Ids already in the output; a torn last line (no newline, or not JSON) is cut off first."""
    return set(recorded_results(output))


def recorded_results(output: Path) -> dict[str, bool]:
    """Each id in the output with whether its last record is ``ok``; cuts a torn last line off first.

    A crash can leave at most one torn line (each record is one ``write`` then fsync), and only at
    the end: it is truncated so that the next append starts on a line of its own.
    """
    if not output.exists():
        return {}
    data = output.read_bytes()
    done: dict[str, bool] = {}
    good_end = 0
    position = 0
    for raw in data.splitlines(keepends=True):
        position += len(raw)
        record = _record_of(raw)
        if record is not None:
            done[record["id"]] = record.get("ok") is True
            good_end = position
        elif position == len(data):
            break  # the torn tail of a crashed run
        else:
            good_end = position  # a foreign line in the middle: keep it, it is not ours to delete
    if good_end < len(data):
        with open(output, "r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())
    return done


def failed_ids(output: Path) -> list[str]:
    """The ids whose last record in ``output`` is not ``ok``, in the order they were first written."""
    return [job_id for job_id, ok in recorded_results(output).items() if not ok]


def _record_of(raw: bytes) -> dict[str, Any] | None:
    """The record a complete output line holds, or None for a torn or foreign line."""
    if not raw.endswith(b"\n"):
        return None
    try:
        record = json.loads(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, or hostile: not one of our lines
        return None
    return record if isinstance(record, dict) and isinstance(record.get("id"), str) else None


def drop_failed(output: Path, ids: set[str]) -> None:
    """Rewrite ``output`` without the failed records of ``ids`` (atomically: a crash keeps the old file)."""
    kept = [raw for raw in output.read_bytes().splitlines(keepends=True)
            if (record := _record_of(raw)) is None or record["id"] not in ids or record.get("ok") is True]
    scratch = output.with_name(f".{output.name}.rewrite")
    with open(scratch, "wb") as fh:
        fh.writelines(kept)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(scratch, output)
    _fsync_folder(output.parent)


def _fsync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every platform can open a folder
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def append_line(fh: IO[str], record: Mapping[str, Any]) -> None:
    """Write one complete JSON line and make it durable before the next job starts.

    The line is always valid JSON on one line (RELIABILITY R1/R2): text that UTF-8 cannot encode (a
    lone surrogate in an id read from ``\\ud800``) makes that one line ASCII-escaped, which reads
    back to the same string, instead of failing the write; U+2028, U+2029 and U+0085, which
    ``str.splitlines`` takes for line breaks, are escaped too.
    """
    fh.write(encode_record(record) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def encode_record(record: Mapping[str, Any]) -> str:
    """``record`` as one line of JSON that UTF-8 can encode; see :func:`append_line`."""
    line = json.dumps(record, ensure_ascii=False, default=str)
    try:
        line.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(record, ensure_ascii=True, default=str)
    return line.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\x85", "\\u0085")


def reply_record(reply: Reply, files_dir: Path | None = None) -> dict[str, Any]:
    """``reply.to_record(files_dir)``: kept for callers of the name batch results always came from."""
    return reply.to_record(files_dir)
