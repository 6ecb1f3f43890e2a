"""What a server allows: concurrency and queue, body and session bounds, the API key."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ServeSettings"]


class ServeSettings(BaseModel):
    """Settings of one server. Attachment caps come from the agent's ``Settings.limits``."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)

    model_name: str = "polymodal"
    """The model name clients send (``model="polymodal"``); ``GET /v1/models`` lists it."""
    api_key: str | None = Field(default=None, repr=False)
    """When set, every route wants ``Authorization: Bearer <key>`` (the chat page asks for it once)."""
    max_concurrency: int = Field(default=4, ge=1)
    """Turns answered at once, each on its own worker thread (one agent, shared models)."""
    max_queue: int = Field(default=16, ge=0)
    """Requests that may wait for a free slot; past that, 429 with ``Retry-After``."""
    max_request_bytes: int = Field(default=64 * 1024**2, gt=0)
    """Largest request body (base64 attachments included), refused with 413 before it is read whole."""
    max_buffered_bytes: int = Field(default=256 * 1024**2, gt=0)
    """Request bytes held by all connections together while they are read and answered; past it, 503 with
    ``Retry-After`` (a declared ``Content-Length`` is reserved when the request arrives). At least
    ``max_request_bytes``."""
    body_timeout: float = Field(default=30.0, gt=0)
    """Seconds a client has to send its whole request body; past it, 408 and the connection closes."""
    max_json_depth: int = Field(default=200, ge=8)
    """Deepest nesting of arrays and objects in a JSON body; deeper is a 400 before any parser reads it."""
    session_store: str = Field(default="memory://", repr=False)  # a redis URL may carry a password
    """Where sessions live (:func:`polymodal.sessions.open_store`): ``memory://`` (this process),
    ``sqlite:///PATH/sessions.db`` (survives restarts; ``polymodal serve``'s default is one in the user's data
    folder) or ``redis://HOST:PORT/DB`` (shared by replicas)."""
    max_sessions: int = Field(default=256, ge=1)
    """Sessions kept at once; past it the least recently used idle session ends."""
    session_ttl: float = Field(default=1800.0, gt=0)
    """Seconds a session (and its artifacts) lives after its last use."""
    max_session_bytes: int = Field(default=256 * 1024**2, gt=0)
    """Bytes one session keeps: its attachments (encoded and decoded), the texts of its turns and the artifacts it
    made. Past it, older attachments are released, then older turns and artifacts (see ``sessions.py``)."""
    max_artifact_bytes: int = Field(default=512 * 1024**2, gt=0)
    """Bytes of generated media kept for ``GET /v1/artifacts/{id}``, all sessions together (oldest go first)."""
    ui: bool = True
    """Mount the web chat page at ``/``."""
    preload: bool = True
    """Load every tool's model at start-up (``/readyz`` says when they are loaded)."""
