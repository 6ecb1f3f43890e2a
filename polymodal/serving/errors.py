"""HTTP errors: every refusal is an OpenAI-shaped error body whose message names the problem.

:class:`APIError` is what the serving layer raises on purpose; :func:`as_api_error` maps the
agent's own errors onto statuses, so the routes and the chat page report them alike:

=====  ============================  ==================================================
status  type                          when
=====  ============================  ==================================================
400    invalid_request_error         malformed JSON, a field of the wrong shape, no user message
401    authentication_error          the API key is missing or wrong
404    not_found_error               unknown model, session or artifact (another session's too)
413    request_too_large             the body or an attachment is over its cap
422    invalid_attachment            an attachment is not a supported, intact image/audio/video
429    rate_limit_error              the queue is full (``Retry-After`` says when to come back)
502    planning_error                the planner LLM gave no valid plan
503    configuration_error           a model or setting is missing on the server
504    budget_exceeded               the request ran past its time budget
500    server_error                  anything else (the details stay in the server log)
=====  ============================  ==================================================
"""

from __future__ import annotations

from polymodal.errors import (
    AttachmentError,
    BudgetExceeded,
    ConfigurationError,
    MediaLimitError,
    PlanningError,
    PolymodalError,
)
from polymodal.serving.protocol import ErrorBody, ErrorResponse

__all__ = ["APIError", "as_api_error"]


class APIError(PolymodalError):
    """An HTTP error response: status, OpenAI error type, message, and optional headers."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None,
        code: str | None = None, headers: dict[str, str] | None = None,
    ) -> None:
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}
        super().__init__(message)

    def body(self) -> dict[str, object]:
        """The JSON body: ``{"error": {"message", "type", "param", "code"}}``."""
        error = ErrorBody(message=self.message, type=self.type, param=self.param, code=self.code)
        return ErrorResponse(error=error).model_dump()


def as_api_error(exc: BaseException) -> APIError:
    """The HTTP error for an exception raised while answering; unexpected ones say only their type."""
    if isinstance(exc, APIError):
        return exc
    if isinstance(exc, MediaLimitError):
        return APIError(413, str(exc), type="request_too_large", code="attachment_too_large")
    if isinstance(exc, AttachmentError):
        return APIError(422, str(exc), type="invalid_attachment", code="invalid_attachment")
    if isinstance(exc, PlanningError):
        return APIError(502, f"planning failed: {exc}", type="planning_error", code="planning_failed")
    if isinstance(exc, BudgetExceeded):
        return APIError(504, str(exc), type="budget_exceeded", code="budget_exceeded")
    if isinstance(exc, ConfigurationError):
        return APIError(503, str(exc), type="configuration_error", code="server_misconfigured")
    if isinstance(exc, PolymodalError):
        return APIError(500, str(exc), type="server_error", code=type(exc).__name__)
    return APIError(500, f"internal error ({type(exc).__name__}); the server log has the details",
                    type="server_error", code="internal_error")
