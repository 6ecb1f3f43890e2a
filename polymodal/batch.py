"""Batch runs: a JSONL file of requests in, a JSONL file of results out, resumable after a crash.

Each input line is ``{"id": "...", "prompt": "...", "attachments": ["path", ...]}`` (relative
paths are read from the jobs file's folder). Each result is appended as one complete line the
moment its job finishes, then flushed and fsynced, so a crash (even SIGKILL) loses at most the job
that was running. On a re-run, ids already in the output are skipped, and a torn last line left by
a crash is cut off before anything is appended (RELIABILITY R1/R2). A job that fails records its
error and the batch goes on.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import queue
import re
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from polymodal.errors import ConfigurationError, PolymodalError, exception_text
from polymodal.results import (  # re-exported: where batch callers have always found them
    append_line,
    completed_ids,
    drop_failed,
    encode_record,
    failed_ids,
    recorded_results,
    reply_record,
)

if TYPE_CHECKING:
    from polymodal.agent import Agent

__all__ = [
    "BatchSummary",
    "Job",
    "JobPool",
    "Pool",
    "PoolFactory",
    "completed_ids",
    "encode_record",
    "failed_ids",
    "read_jobs",
    "reply_record",
    "run_batch",
    "run_one",
]


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
    made_up: bool = False
    """The line had no id of its own: ``id`` is ``line-N`` (renamed if a real job has that id)."""


@dataclass
class BatchSummary:
    """What a batch run did."""

    total: int = 0
    """Entries in the jobs file (bad lines included)."""
    pending: int = 0
    """Jobs this run set out to do."""
    skipped: int = 0
    """Jobs already recorded in the output by an earlier run."""
    retried: int = 0
    """Jobs recorded as failed that this run does again (``retry_failed``)."""
    duplicates: list[str] = field(default_factory=list)
    """Ids that appear again later in the jobs file (only the first is run)."""
    ok: int = 0
    failed: int = 0
    failed_ids: list[str] = field(default_factory=list)


def read_jobs(path: Path) -> Iterator[Job | BadLine]:
    """Parse the jobs file; a bad line yields a BadLine (id from the line if it has one, else ``line-N``).

    Every line is a job or a bad line, whatever it holds (RELIABILITY R1): lines are split on line
    breaks of the bytes (``\\n``, ``\\r\\n``, ``\\r``; a U+2028 inside a JSON string is text, not a
    break) and decoded one at a time, so invalid UTF-8 spoils only its own line; a UTF-8 byte order
    mark before the first line is ignored; nesting deeper than the JSON parser's recursion limit,
    a number too long to convert and anything else the parser raises make a bad line.
    """
    try:
        data = path.read_bytes()
    except OSError as exc:
        msg = f"cannot read jobs file {str(path)!r}: {exc}"
        raise ConfigurationError(msg) from exc
    entries = [_parse_line(raw, number) for number, raw in enumerate(data.removeprefix(codecs.BOM_UTF8).splitlines(), 1)
               if raw.strip()]
    # A made-up ``line-N`` must never take a real job's id: that job would be called a duplicate, never run.
    taken = {e.id for e in entries if not (isinstance(e, BadLine) and e.made_up)}
    for entry in entries:
        if isinstance(entry, BadLine) and entry.made_up:
            while entry.id in taken:
                entry.id += "~bad"
            taken.add(entry.id)
        yield entry


def _parse_line(raw: bytes, number: int) -> Job | BadLine:
    try:
        line = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return BadLine(f"line-{number}", f"line {number} is not valid UTF-8 (byte {exc.start + 1})", made_up=True)
    try:
        data = json.loads(line)
    except RecursionError:
        return BadLine(f"line-{number}", f"line {number} is not a valid job: JSON nested too deeply", made_up=True)
    except ValueError as exc:  # JSONDecodeError, and int() refusing a 5,000-digit number
        reason = exc.msg if isinstance(exc, json.JSONDecodeError) else exception_text(exc)[:200]
        return BadLine(f"line-{number}", f"line {number} is not valid JSON: {reason}", made_up=True)
    try:
        return Job.model_validate(data)
    except ValidationError as exc:
        where = data.get("id") if isinstance(data, dict) and isinstance(data.get("id"), str) and data["id"] else None
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'job'}: {e['msg']}" for e in exc.errors())
        return BadLine(where or f"line-{number}", f"line {number} is not a valid job: {problems}", made_up=not where)


def _resolve(path: str, base: Path) -> str:
    candidate = Path(path).expanduser()
    return str(candidate if candidate.is_absolute() else base / candidate)


def plan_batch(entries: list[Job | BadLine], recorded: Mapping[str, bool], *, retry_failed: bool = False
               ) -> tuple[list[Job | BadLine], BatchSummary]:
    """Which entries still need a run: not recorded yet (or recorded as failed, with ``retry_failed``).

    A second entry with an id seen earlier in the jobs file is a duplicate: never run, but named in
    the summary (it is not "already done", there may be no output yet).
    """
    summary = BatchSummary(total=len(entries))
    seen: set[str] = set()
    pending: list[Job | BadLine] = []
    for entry in entries:
        if entry.id in seen:
            summary.duplicates.append(entry.id)
            continue
        seen.add(entry.id)
        ok = recorded.get(entry.id)
        if ok is None or (retry_failed and not ok):
            pending.append(entry)
            summary.retried += ok is False
        else:
            summary.skipped += 1
    summary.pending = len(pending)
    return pending, summary


def run_batch(
    agent: Agent | None,
    jobs_path: Path,
    output: Path,
    *,
    files_dir: Path | None = None,
    concurrency: int = 1,
    retry_failed: bool = False,
    on_start: Callable[[BatchSummary], None] | None = None,
    on_done: Callable[[dict[str, Any]], None] | None = None,
    on_interrupt: Callable[[int], None] | None = None,
    pool: PoolFactory | None = None,
) -> BatchSummary:
    """Run every job not yet in ``output``, up to ``concurrency`` at once (models load once for all).

    Each job is ``agent.run`` on a fresh conversation (the shared tools and models), so jobs in
    flight together share model batches (:mod:`polymodal.runtime.batching`). Results are
    appended in the order jobs finish, each as one complete fsynced line: after a crash, a re-run
    runs every job without a line exactly once and never one that has a line.

    Args:
        retry_failed: run again the jobs whose recorded result failed; their old lines are removed
            first (atomically), so each id still appears once.
        on_start: called once with the summary before any job runs (``pending``, ``skipped``,
            ``duplicates`` filled in).
        on_done: called with each record as it is written.
        on_interrupt: called on Ctrl-C with the number of jobs in flight, which are still waited
            for and written (a second Ctrl-C stops at once).
        pool: where the jobs run instead of threads here, e.g.
            ``polymodal.ray_batch.RayOptions(factory)`` for Ray actors over a cluster, each building
            its own agent (``agent`` may then be None).
    """
    entries = list(read_jobs(jobs_path))
    recorded = recorded_results(output)
    pending, summary = plan_batch(entries, recorded, retry_failed=retry_failed)
    if summary.retried:
        drop_failed(output, {e.id for e in pending if recorded.get(e.id) is False})
    if on_start is not None:
        on_start(summary)
    output.parent.mkdir(parents=True, exist_ok=True)

    if agent is None and pool is None:
        msg = "run_batch needs an agent, or a pool whose workers build their own (polymodal.ray_batch.RayOptions)"
        raise ConfigurationError(msg)

    def run(entry: Job | BadLine) -> dict[str, Any]:
        assert agent is not None
        return run_one(agent, entry, jobs_path.parent, files_dir)

    def record(fh: IO[str], result: dict[str, Any]) -> None:
        append_line(fh, result)
        if result["ok"]:
            summary.ok += 1
        else:
            summary.failed += 1
            summary.failed_ids.append(result["id"])
        if on_done is not None:
            on_done(result)

    jobs: Pool = pool(pending, jobs_path.parent, files_dir, concurrency) if pool else JobPool(pending, run, concurrency)
    with open(output, "a", encoding="utf-8") as fh:
        try:
            for result in jobs:
                record(fh, result)
        except KeyboardInterrupt:
            jobs.stop()  # Ctrl-C: start nothing new, but write what the jobs in flight finish
            if on_interrupt is not None:
                on_interrupt(jobs.in_flight)
            for result in jobs.drain():
                record(fh, result)
            raise
        finally:
            jobs.close()
    return summary


class Pool(Protocol):
    """Runs a batch's jobs somewhere; iterating yields each job's record as it finishes."""

    @property
    def in_flight(self) -> int: ...

    def __iter__(self) -> Iterator[dict[str, Any]]: ...

    def stop(self) -> None: ...

    def drain(self) -> Iterator[dict[str, Any]]: ...

    def close(self) -> None: ...


PoolFactory = Callable[[list["Job | BadLine"], Path, "Path | None", int], Pool]
"""Makes the pool for (pending jobs, the jobs file's folder, files folder, concurrency)."""


class JobPool:
    """Runs jobs on up to ``concurrency`` daemon threads; iterate to get each result as it finishes.

    Daemon threads, so an aborted run never waits for them at exit. :meth:`stop` hands out no new
    job; :meth:`drain` then yields what the jobs in flight produce, so computed work is written.
    """

    def __init__(self, entries: list[Job | BadLine], run: Callable[[Job | BadLine], dict[str, Any]],
                 concurrency: int) -> None:
        self._todo: queue.SimpleQueue[Job | BadLine] = queue.SimpleQueue()
        for entry in entries:
            self._todo.put(entry)
        self._finished: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self._run = run
        self._remaining = len(entries)
        self._lock = threading.Lock()
        self._workers = [threading.Thread(target=self._work, name=f"polymodal-batch-{i}", daemon=True)
                         for i in range(max(1, min(concurrency, len(entries))))]
        for worker in self._workers if entries else []:
            worker.start()

    def _work(self) -> None:
        while True:
            try:
                entry = self._todo.get_nowait()
            except queue.Empty:
                return
            try:
                result = self._run(entry)
            except Exception as exc:  # noqa: BLE001 - a job's failure is its record, never a lost job
                result = {"id": entry.id, "ok": False, "error": f"{type(exc).__name__}: {exc}",
                          "error_type": "internal"}
            self._finished.put(result)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while self._remaining > 0:
            record = self._finished.get()
            self._remaining -= 1
            yield record

    @property
    def in_flight(self) -> int:
        """Jobs started or queued whose results have not been handed out yet."""
        return self._remaining

    def close(self) -> None:
        """Nothing to release: the worker threads end when the jobs do."""

    def stop(self) -> None:
        """Start no more jobs (the ones in flight go on)."""
        while True:
            try:
                self._todo.get_nowait()
            except queue.Empty:
                return
            self._remaining -= 1

    def drain(self) -> Iterator[dict[str, Any]]:
        """After :meth:`stop`: the results of the jobs that were in flight, as they finish."""
        while self._remaining > 0:
            try:
                record = self._finished.get(timeout=0.1)
            except queue.Empty:
                if not any(worker.is_alive() for worker in self._workers):
                    return
                continue
            self._remaining -= 1
            yield record


def run_one(agent: Agent, entry: Job | BadLine, base: Path, files_dir: Path | None) -> dict[str, Any]:
    """One job's result record, run on a fresh conversation (a failure is a record too; nothing a job does escapes)."""
    if isinstance(entry, BadLine):
        return {"id": entry.id, "ok": False, "error": entry.error, "error_type": "ConfigurationError"}
    try:
        reply = agent.run(entry.prompt, [_resolve(a, base) for a in entry.attachments])  # a fresh conversation
        record = reply.to_record(files_dir / _folder_name(entry.id) if files_dir else None)
    except PolymodalError as exc:
        return {"id": entry.id, "ok": False, "error": exception_text(exc), "error_type": type(exc).__name__}
    except Exception as exc:  # noqa: BLE001 - one job's unexpected failure must not end the batch
        return {"id": entry.id, "ok": False, "error": f"{type(exc).__name__}: {exception_text(exc)}",
                "error_type": "internal"}
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
        safe = f"{safe}-{hashlib.sha256(job_id.encode('utf-8', 'surrogatepass')).hexdigest()[:8]}"
    return safe or "job"
