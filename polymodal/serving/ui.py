"""The web chat page at ``/``: a Gradio Blocks app mounted on the API's own FastAPI app.

Each browser tab is one server session (the same store, bounds and queue as the API), so its
attachments keep their ids across turns and no other tab can see them. A turn shows, as they
happen, the plan and one entry per step with its status and timing, the answer as it streams,
then generated images and sounds; errors show as readable messages. "New conversation" ends the
session and starts over.

Everything models write is shown as text: markdown and HTML rendering are off, and the text is
HTML-escaped before Gradio sees it, so a caption reading ``<img src=x onerror=...>`` or
``![](http://tracker/x.png)`` is displayed literally, never interpreted (RELIABILITY R5).
"""

from __future__ import annotations

import asyncio
import hmac
import html
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from polymodal.agent.events import AnswerToken, Done, PlanReady, StepFinished, StepProgress, StepStarted
from polymodal.agent.executor import StepResult
from polymodal.errors import MissingDependencyError, PolymodalError
from polymodal.media import Attachment, Modality
from polymodal.serving.errors import as_api_error
from polymodal.serving.messages import MediaRef, TurnRequest
from polymodal.serving.service import Service
from polymodal.serving.sessions import Session
from polymodal.serving.uploads import UploadPathGuard

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # the page must not phone home

try:
    import gradio as gr
except ImportError as exc:  # pragma: no cover - the 'serve' extra is missing
    raise MissingDependencyError("the polymodal chat page", "gradio", "serve") from exc

__all__ = ["UPLOADS", "build_ui", "mount_ui"]

Message = dict[str, Any]
_PREVIEW = 600  # characters of a step's output shown under its title
UPLOADS = str(gr.utils.get_upload_folder())
"""The page's upload folder: the only files a client may name (checked before Gradio copies, and again here)."""


def mount_ui(app: Any, service: Service) -> None:
    """Mount the chat page at ``/`` of ``app`` (its login form wants the API key, when one is set)."""
    key = service.settings.api_key
    auth = (lambda _user, password: hmac.compare_digest(str(password).encode(), key.encode())) if key else None
    limits = service.agent.settings.limits
    page = build_ui(service)
    gr.mount_gradio_app(app, page, path="/", auth=auth, auth_message="Password: the server's API key",
                        max_file_size=limits.max_bytes, ssr_mode=False, show_error=True, footer_links=[])
    # Gradio checks the paths a client names only for a launched app: a mounted one must say it is.
    page.has_launched = True
    app.add_middleware(UploadPathGuard, folder=UPLOADS)  # and ours, before Gradio copies anything (RELIABILITY S1)


def build_ui(service: Service) -> gr.Blocks:
    """The chat page's Blocks (not mounted)."""
    with gr.Blocks(title="polymodal", analytics_enabled=False, fill_height=True) as page:
        gr.Markdown("## polymodal\nAsk about photos, voice notes and videos: attach them, ask, and watch the "
                    "plan run.")
        chatbot = gr.Chatbot(label="Conversation", elem_id="chat", render_markdown=False, sanitize_html=True,
                             allow_tags=False, height=560, feedback_options=None,
                             group_consecutive_messages=False, buttons=["copy"])
        box = gr.MultimodalTextbox(elem_id="ask", file_count="multiple", file_types=["image", "audio", "video"],
                                   sources=["upload", "microphone"], show_label=False,
                                   placeholder="Ask something; attach images, audio or video with the clip")
        new = gr.Button("New conversation", elem_id="new-conversation", variant="secondary")

        def forget(session_id: str | None) -> None:  # the tab is gone: end its session now
            if session_id:
                service.sessions.end(session_id)

        session = gr.State(None, time_to_live=service.settings.session_ttl, delete_callback=forget)

        async def respond(message: dict[str, Any], history: list[Message], session_id: str | None
                          ) -> AsyncIterator[tuple[list[Message], Any, str | None]]:
            async for shown, sid, done in _turn(service, message, history, session_id):
                yield shown, gr.MultimodalTextbox(value=None, interactive=done), sid

        def reset(session_id: str | None) -> tuple[list[Message], Any, None]:
            forget(session_id)
            return [], gr.MultimodalTextbox(value=None, interactive=True), None

        box.submit(respond, [box, chatbot, session], [chatbot, box, session], concurrency_limit=None,
                   api_name="chat")
        new.click(reset, [session], [chatbot, box, session], concurrency_limit=None, api_name="new_conversation")
        chatbot.clear(reset, [session], [chatbot, box, session], api_visibility="private")  # the bin icon
    page.queue(default_concurrency_limit=None)
    return page


def text(value: str) -> Message:
    """An assistant message showing ``value`` literally."""
    return {"role": "assistant", "content": {"type": "text", "text": html.escape(value)}}


async def _turn(service: Service, message: dict[str, Any], history: list[Message], session_id: str | None
                ) -> AsyncIterator[tuple[list[Message], str | None, bool]]:
    """One turn as successive states of the conversation: (history, session id, finished?)."""
    words = str(message.get("text") or "")
    files = [str(f.get("path") if isinstance(f, dict) else f) for f in message.get("files") or []]
    history = [*history, *({"role": "user", "content": {"path": f}} for f in files)]
    if words:
        history.append({"role": "user", "content": {"type": "text", "text": html.escape(words)}})
    yield history, session_id, False
    try:
        session = await asyncio.to_thread(_session, service, session_id)  # a store call: off the loop
        session_id = session.id
        media = [MediaRef(block={}, where=Path(f).name, path=f, root=UPLOADS) for f in files]
        running = await service.start(TurnRequest(text=words, media=media), session, stream=True)
        await running.loaded
        view = _TurnView(history)
        async for event in running.events():
            if view.apply(event):
                yield view.history, session_id, False
            if isinstance(event, Done) and event.reply.artifacts:  # decoding them takes a while: off the loop
                view.history.extend(await asyncio.to_thread(_media_messages, event.reply.artifacts))
        await running.done
        yield view.history, session_id, True
    except Exception as exc:
        error = as_api_error(exc)
        shown = error.message if isinstance(exc, PolymodalError) else f"internal error ({type(exc).__name__})"
        yield [*history, text(f"Error: {shown}")], session_id, True


def _session(service: Service, session_id: str | None) -> Session:
    if session_id:
        try:
            return service.sessions.get(session_id)
        except PolymodalError:
            pass  # expired: a new conversation starts (the page shows only what it had)
    return service.sessions.create()


class _TurnView:
    """The chat messages of one running turn, updated event by event."""

    def __init__(self, history: list[Message]) -> None:
        self.history = history
        self.steps: dict[str, Message] = {}
        self.answer: Message | None = None
        self.streamed = ""

    def apply(self, event: Any) -> bool:
        """Reflect ``event``; True when the page should update."""
        if isinstance(event, PlanReady):
            for step in event.plan.steps:
                self.steps[step.id] = {"role": "assistant", "content": {"type": "text", "text": "waiting"},
                                       "metadata": {"title": f"{step.id} · {step.tool}", "status": "pending",
                                                    "id": step.id}}
                self.history.append(self.steps[step.id])
        elif isinstance(event, StepStarted | StepFinished):
            self._step(event.step, finished=isinstance(event, StepFinished))
        elif isinstance(event, StepProgress) and event.step_id in self.steps:
            share = f" ({event.fraction:.0%})" if event.fraction is not None else ""
            self.steps[event.step_id]["content"] = {"type": "text", "text": html.escape(event.message + share)}
        elif isinstance(event, AnswerToken):
            self.streamed += event.text
            self._answer(self.streamed)
        elif isinstance(event, Done):  # its generated media are decoded apart (_media_messages)
            self._answer(event.reply.text)
        return True

    def _step(self, step: StepResult, *, finished: bool) -> None:
        entry = self.steps.get(step.id)
        if entry is None:
            return
        args = ", ".join(f"{k}={v!r}" for k, v in step.args.items())
        body = f"{step.tool}({args})"
        if finished:
            outcome = step.content if step.ok else f"{step.status}: {step.error}"
            body += "\n" + (outcome or "")[:_PREVIEW]
            entry["metadata"] |= {"status": "done", "duration": round(step.seconds, 3),
                                  "title": f"{step.id} · {step.tool} · {step.status}"}
        entry["content"] = {"type": "text", "text": html.escape(body)}

    def _answer(self, value: str) -> None:
        if self.answer is None:
            self.answer = text(value)
            self.history.append(self.answer)
        else:
            self.answer["content"] = {"type": "text", "text": html.escape(value)}


def _media_messages(artifacts: list[Attachment]) -> list[Message]:
    """Generated images and sounds as chat messages, decoded (run it on a worker thread)."""
    return [_media(artifact) for artifact in artifacts]


def _media(artifact: Attachment) -> Message:
    if artifact.kind is Modality.IMAGE:
        return {"role": "assistant", "content": gr.Image(value=artifact.image(), label=artifact.id)}
    if artifact.kind is Modality.AUDIO:
        return {"role": "assistant", "content": gr.Audio(value=(16000, artifact.audio(16000)), label=artifact.id)}
    return text(f"({artifact.id}: {artifact.mime_type}, {artifact.size_bytes} bytes)")
