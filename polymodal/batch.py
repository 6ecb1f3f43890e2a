"""Batch runs: a JSONL file of requests in, a JSONL file of results out, resumable after a crash.

Each input line is ``{"id": "...", "prompt": "...", "attachments": ["path", ...]}`` (relative
paths are read from the jobs file's folder). Each result is appended as one complete line the
moment its job finishes, then flushed and fsynced, so a crash (even SIGKILL) loses at most the job
that was running. On a re-run, ids already in the output are skipped, and a torn last line left by
a crash is cut off before anything is appended (RELIABILITY R1/R2). A job that fails records its
error and the batch goes on.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polymodal.errors import ConfigurationError, PolymodalError
from polymodal.media import Attachment

if TYPE_CHECKING:
    from polymodal.agent import Agent, Reply

__all__ = ["BatchSummary", "Job", "completed_ids", "read_jobs", "reply_record", "run_batch"]


class Job(BaseModel):
    """One request of a batch."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    prompt: str
    attachments: list[str] = Field(default_factory=list)


@dataclass
class BadLine:
    """A jobs-file line that is not a valid job: recorded as a failed result under ``id``."""

    id: str
    error: str


@dataclass
class BatchSummary:
    """What a batch run did."""

    total: int = 0
    skipped: int = 0
    ok: int = 0
    failed: int = 0
    failed_ids: list[str] = field(default_factory=list)


def read_jobs(path: Path) -> Iterator[Job | BadLine]:
    """Parse the jobs file; a bad line yields a BadLine (id from the line if it has one, else ``line-N``)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        msg = f"cannot read jobs file {str(path)!r}: {exc}"
        raise ConfigurationError(msg) from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except json.JSONDecodeError as exc:
            yield BadLine(f"line-{number}", f"line {number} is not valid JSON: {exc.msg}")
            continue
        try:
            yield Job.model_validate(data)
        except ValidationError as exc:
            where = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) else None
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'job'}: {e['msg']}" for e in exc.errors())
            yield BadLine(where or f"line-{number}", f"line {number} is not a valid job: {problems}")


def completed_ids(output: Path) -> set[str]:
    """Ids already in the output; a torn last line (no newline, or not JSON) is cut off first."""
    if not output.exists():
        return set()
    data = output.read_bytes()
    done: set[str] = set()
    good_end = 0
    position = 0
    for raw in data.splitlines(keepends=True):
        position += len(raw)
        try:
            record = json.loads(raw) if raw.endswith(b"\n") else None
        except (json.JSONDecodeError, UnicodeDecodeError):
            record = None
        if isinstance(record, dict) and isinstance(record.get("id"), str):
            done.add(record["id"])
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


def append_line(fh: IO[str], record: Mapping[str, Any]) -> None:
    """Write one complete JSON line and make it durable before the next job starts."""
    fh.write(json.dumps(record, ensure_ascii=False, default=str) + "\n")
    fh.flush()
    os.fsync(fh.fileno())


def reply_record(reply: Reply, files_dir: Path | None = None) -> dict[str, Any]:
    """A JSON-ready view of a Reply; produced media are saved under ``files_dir`` and given by path."""
    artifacts = []
    for attachment in reply.artifacts:
        entry: dict[str, Any] = {"id": attachment.id, "kind": attachment.kind.value, "mime_type": attachment.mime_type}
        if files_dir is not None:
            files_dir.mkdir(parents=True, exist_ok=True)
            suffix = "." + attachment.mime_type.rsplit("/", 1)[-1].replace("mpeg", "mp3").replace("x-wav", "wav")
            entry["path"] = str(attachment.save(files_dir / f"{attachment.id or 'artifact'}{suffix}"))
        artifacts.append(entry)
    steps = []
    for step in reply.steps:
        item = step.model_dump(mode="json")
        artifact = step.artifact
        if isinstance(artifact, BaseModel) and not isinstance(artifact, Attachment):
            item["artifact"] = artifact.model_dump(mode="json")
        steps.append(item)
    return {
        "text": reply.text,
        "planner": reply.planner,
        "fusion": reply.fusion,
        "llm_calls": reply.llm_calls,
        "seconds": round(reply.seconds, 3),
        "attachment_ids": reply.attachment_ids,
        "plan": reply.plan.model_dump(mode="json"),
        "steps": steps,
        "artifacts": artifacts,
    }


def _resolve(path: str, base: Path) -> str:
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else base / candidate)


def run_batch(
    agent: Agent,
    jobs_path: Path,
    output: Path,
    *,
    files_dir: Path | None = None,
    on_start: Callable[[int, int], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
) -> BatchSummary:
    """Run every job not yet in ``output`` with one agent (models load once for the whole batch).

    ``on_start(total, already_done)`` is called once, ``on_done(record)`` after each job.
    """
    entries = list(read_jobs(jobs_path))
    done = completed_ids(output)
    summary = BatchSummary(total=len(entries))
    seen: set[str] = set()
    pending: list[Job | BadLine] = []
    for entry in entries:
        if entry.id in done or entry.id in seen:  # finished earlier, or a duplicate id in the file
            summary.skipped += 1
        else:
            pending.append(entry)
        seen.add(entry.id)
    if on_start is not None:
        on_start(len(pending), summary.skipped)
    output.parent.mkdir(parents=True, exist_ok=True)
    with open(output, "a", encoding="utf-8") as fh:
        for entry in pending:
            record = _run_one(agent, entry, jobs_path.parent, files_dir)
            append_line(fh, record)
            if record["ok"]:
                summary.ok += 1
            else:
                summary.failed += 1
                summary.failed_ids.append(entry.id)
            if on_done is not None:
                on_done(record)
    return summary


def _run_one(agent: Agent, entry: Job | BadLine, base: Path, files_dir: Path | None) -> dict[str, Any]:
    if isinstance(entry, BadLine):
        return {"id": entry.id, "ok": False, "error": entry.error, "error_type": "ConfigurationError"}
    agent.reset()  # each job is its own conversation; loaded models stay loaded
    try:
        reply = agent.chat(entry.prompt, [_resolve(a, base) for a in entry.attachments])
    except PolymodalError as exc:
        return {"id": entry.id, "ok": False, "error": str(exc), "error_type": type(exc).__name__}
    except Exception as exc:  # noqa: BLE001 - one job's unexpected failure must not end the batch
        return {"id": entry.id, "ok": False, "error": f"{type(exc).__name__}: {exc}", "error_type": "internal"}
    record = reply_record(reply, files_dir / _folder_name(entry.id) if files_dir else None)
    failed = [s for s in reply.steps if s.error]
    result: dict[str, Any] = {"id": entry.id, "ok": not failed}
    if failed:
        result["error"] = "; ".join(f"{s.id} ({s.tool}): {s.error}" for s in failed)
        result["error_type"] = failed[0].error_type
    return {**result, **record}


def _folder_name(job_id: str) -> str:
    """A folder name for a job's files that no id (``../x``, ``/etc``, control characters) can escape."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", job_id).strip(".")[:60]
    if safe != job_id:  # keep distinct ids distinct after cleaning
        safe = f"{safe}-{hashlib.sha256(job_id.encode()).hexdigest()[:8]}"
    return safe or "job"
