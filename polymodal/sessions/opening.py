"""Opening a session store by URL: ``memory://``, ``sqlite:///PATH/sessions.db``, ``redis://HOST:PORT/DB``.

``memory://`` lives in this process only; ``sqlite:///ABSOLUTE/PATH.db`` survives restarts on one
machine (the default of ``polymodal serve``, in the user's data folder); ``redis://`` is shared by
several processes or machines (replicas). Backends are imported only when named.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from polymodal.errors import SessionStoreError
from polymodal.sessions.store import SessionStore, shown_url

__all__ = ["default_url", "open_store"]


def default_url() -> str:
    """``sqlite:///`` a ``sessions.db`` in the user's data folder (platformdirs), what ``polymodal serve`` uses."""
    try:
        from platformdirs import user_data_dir
    except ImportError:  # pragma: no cover - the 'sessions' extra brings it
        return f"sqlite:///{Path.home() / '.local' / 'share' / 'polymodal' / 'sessions.db'}"
    return f"sqlite:///{Path(user_data_dir('polymodal')) / 'sessions.db'}"


def open_store(url: str) -> SessionStore:
    """The store a URL names, opened and checked (the file can be written, the server answers).

    Raises:
        SessionStoreError: an unknown scheme, a folder that cannot be made, a file that is not a
            sessions database, a server that does not answer — one line naming the URL.
    """
    scheme = urlsplit(url).scheme.lower()
    if scheme == "memory":
        from polymodal.sessions.memory import MemoryStore

        return MemoryStore(url)
    if scheme == "sqlite":
        from polymodal.sessions.sqlite import SqliteStore

        return SqliteStore(url)
    if scheme in ("redis", "rediss", "unix"):
        from polymodal.sessions.redis import RedisStore

        return RedisStore(url)
    msg = (f"session store {shown_url(url)!r}: unknown kind of store; use memory://, sqlite:///PATH/sessions.db "
           "or redis://HOST:PORT/DB")
    raise SessionStoreError(msg)
