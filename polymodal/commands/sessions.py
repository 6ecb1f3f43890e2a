"""``polymodal sessions list|show|rm|prune``: the stored sessions of ``polymodal serve``, for operators.

They open the same store the server does (``--session-store``, ``POLYMODAL_SESSION_STORE``, the
config's ``[serve] session_store``, else the sqlite file in the user's data folder), so they may run
beside a live server: sqlite and Redis take care of concurrent readers and writers. Everything a
stored session holds came from clients, so it is printed escaped (``safe``), never as markup.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from polymodal.commands._common import (
    EXIT_FAILED,
    ConfigOpt,
    DebugOpt,
    app,
    err,
    errors_as_lines,
    out,
    print_table,
    safe,
    say,
    session_store_url,
)

sessions_app = typer.Typer(help="The sessions polymodal serve keeps: list, show, rm, prune.", no_args_is_help=True)
app.add_typer(sessions_app, name="sessions")

StoreOpt = Annotated[str | None, typer.Option(
    "--session-store", envvar="POLYMODAL_SESSION_STORE", metavar="URL", show_default=False,
    help="the store (as for polymodal serve; default: sessions.db in the user's data folder)")]


def _when(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, tz=timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


@sessions_app.command("list")
def list_sessions(session_store: StoreOpt = None, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """Every stored session, least recently used first: id, turns, bytes, last use."""
    from polymodal.sessions import open_store, shown_url

    with errors_as_lines(debug, EXIT_FAILED):
        url = session_store_url(session_store, config)
        store = open_store(url)
        try:
            rows = store.rows()
        finally:
            store.close()
        table = Table("session", "turns", "bytes", "last used", "created")
        for row in rows:
            table.add_row(Text(safe(row.id)), str(row.turns), f"{row.bytes:,}", _when(row.last_used),
                          _when(row.created))
        print_table(table)
        say(err, f"{len(rows)} session(s) in {shown_url(url)}", "dim")


@sessions_app.command("show")
def show(session_id: Annotated[str, typer.Argument(help="the session's id (sess_...)")],
         session_store: StoreOpt = None, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """One session's turns, attachments and artifacts, checked as the server checks them when it loads it."""
    from polymodal.media import DEFAULT_LIMITS
    from polymodal.sessions import decode, open_store

    with errors_as_lines(debug, EXIT_FAILED):
        store = open_store(session_store_url(session_store, config))
        try:
            stored = store.load(session_id)
        finally:
            store.close()
        if stored is None:
            say(err, f"error: no session {safe(session_id[:64])!r} in this store", "red")
            raise typer.Exit(EXIT_FAILED)
        session = decode(session_id, stored.encoded.record, stored.encoded.blobs, limits=DEFAULT_LIMITS)
        conversation = session.conversation
        say(out, f"session {session_id}: version {stored.version}, {len(conversation.turns)} turn(s), "
                 f"{stored.encoded.size:,} bytes, last used {_when(stored.last_used)}")
        for n, turn in enumerate(conversation.turns, 1):
            added = f" [{', '.join(turn.attachment_ids)}]" if turn.attachment_ids else ""
            say(out, f"{n}. user{added}: {safe(turn.user)}")
            say(out, f"   reply: {safe(turn.reply)}")
        for attachment_id, attachment in conversation.attachments.items():
            say(out, f"attachment {attachment_id}: {attachment.mime_type}, {attachment.size_bytes:,} bytes, "
                     f"{safe(attachment.name)}")
        for token, artifact in session.artifacts.items():
            say(out, f"artifact {token} ({artifact.id}): {artifact.mime_type}, {artifact.size_bytes:,} bytes")
        if conversation.released:
            say(out, f"({conversation.released} older attachment(s) released)")


@sessions_app.command("rm")
def rm(session_ids: Annotated[list[str], typer.Argument(help="ids of the sessions to remove")],
       session_store: StoreOpt = None, config: ConfigOpt = None, debug: DebugOpt = False) -> None:
    """Remove sessions and their attachments and artifacts (a client naming one then gets a 404)."""
    from polymodal.sessions import open_store

    with errors_as_lines(debug, EXIT_FAILED):
        store = open_store(session_store_url(session_store, config))
        try:
            missing = [i for i in session_ids if not store.delete(i)]
        finally:
            store.close()
        say(err, f"removed {len(session_ids) - len(missing)} session(s)", "dim")
        if missing:
            say(err, f"error: no such session: {', '.join(safe(i[:64]) for i in missing)}", "red")
            raise typer.Exit(EXIT_FAILED)


@sessions_app.command("prune")
def prune(
    older_than: Annotated[float, typer.Option("--older-than", min=0, metavar="SECONDS",
                                              help="remove sessions idle longer than this")] = 1800.0,
    session_store: StoreOpt = None, config: ConfigOpt = None, debug: DebugOpt = False,
) -> None:
    """Remove every session idle longer than --older-than seconds (the server's session_ttl is 1800)."""
    from polymodal.sessions import open_store

    with errors_as_lines(debug, EXIT_FAILED):
        store = open_store(session_store_url(session_store, config))
        try:
            gone = store.prune(time.time() - older_than)
        finally:
            store.close()
        say(out, f"pruned {len(gone)} session(s) idle over {older_than:g} s")
