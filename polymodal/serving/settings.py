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
    """Turns answered at once; each runs on its own copy of the agent (shared models)."""
    max_queue: int = Field(default=16, ge=0)
    """Requests that may wait for a free slot; past that, 429 with ``Retry-After``."""
    max_request_bytes: int = Field(default=64 * 1024**2, gt=0)
    """Largest request body (base64 attachments included), refused with 413 before it is read whole."""
    max_sessions: int = Field(default=256, ge=1)
    """Sessions kept at once; past it the least recently used idle session ends."""
    session_ttl: float = Field(default=1800.0, gt=0)
    """Seconds a session (and its artifacts) lives after its last use."""
    max_session_bytes: int = Field(default=256 * 1024**2, gt=0)
    """Attachment bytes one session keeps; older attachments are released past it."""
    max_artifact_bytes: int = Field(default=512 * 1024**2, gt=0)
    """Bytes of generated media kept for ``GET /v1/artifacts/{id}``, all sessions together (oldest go first)."""
    ui: bool = True
    """Mount the web chat page at ``/``."""
    preload: bool = True
    """Load every tool's model at start-up (``/readyz`` says when they are loaded)."""
