"""Talk to ``polymodal serve`` with the OpenAI SDK: one answer, then the same request streamed.

    polymodal serve --profile offline --port 8000          # in another terminal
    python examples/openai_client.py examples/media/voice-note.wav "What does this voice note say?"

FILE defaults to examples/media/voice-note.wav; the server to ``$POLYMODAL_URL`` or
http://127.0.0.1:8000/v1. With no server there, the script says so in one line and how to start one.

Images go as ``image_url`` data URLs, audio as ``input_audio``, anything else (a video) as a
``file`` part. The answer is ``choices[0].message.content``; polymodal's plan, steps and timings
are under ``model_extra["polymodal"]``. Streaming with ``stream_options={"polymodal_events": True}``
also sends each step as it starts and ends (chunks without choices, which plain clients skip).
"""

from __future__ import annotations

import argparse
import base64
import mimetypes
import os
import sys
from pathlib import Path
from typing import Any

from openai import APIConnectionError, OpenAI

MEDIA = Path(__file__).resolve().parent / "media"


def content_part(path: Path) -> dict[str, Any]:
    """The OpenAI content part for a file (the server sniffs the real type from the bytes)."""
    data = base64.b64encode(path.read_bytes()).decode()
    mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    if mime.startswith("image/"):
        return {"type": "image_url", "image_url": {"url": f"data:{mime};base64,{data}"}}
    if mime.startswith("audio/"):
        return {"type": "input_audio", "input_audio": {"data": data, "format": path.suffix.lstrip(".") or "wav"}}
    return {"type": "file", "file": {"file_data": f"data:{mime};base64,{data}", "filename": path.name}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path, nargs="?", default=MEDIA / "voice-note.wav",
                        help="an image, audio or video file")
    parser.add_argument("question", nargs="?", default="What is in this file?")
    parser.add_argument("--base-url", default=os.environ.get("POLYMODAL_URL", "http://127.0.0.1:8000/v1"))
    parser.add_argument("--api-key", default=os.environ.get("POLYMODAL_API_KEY", "none"))
    args = parser.parse_args()

    client = OpenAI(base_url=args.base_url, api_key=args.api_key, max_retries=1)
    messages: Any = [{"role": "user", "content": [{"type": "text", "text": args.question}, content_part(args.file)]}]

    response = client.chat.completions.create(model="polymodal", messages=messages)
    print("answer:", response.choices[0].message.content)
    details = (response.model_extra or {})["polymodal"]
    for step in details["steps"]:
        print(f"  step {step['id']}: {step['tool']} {step['status']} in {step['seconds']:.2f} s")
    print(f"  planned by {details['planner']}, {details['timings']['total']:.2f} s in all")

    print("streamed: ", end="", flush=True)
    stream = client.chat.completions.create(model="polymodal", messages=messages, stream=True,
                                            stream_options={"polymodal_events": True})  # type: ignore[typeddict-unknown-key]
    for chunk in stream:
        if chunk.choices:
            print(chunk.choices[0].delta.content or "", end="", flush=True)
        else:
            event = (chunk.model_extra or {})["polymodal_event"]
            if event["type"] == "step_finished":
                print(f"[{event['step']['tool']}: {event['step']['status']}] ", end="", flush=True)
    print()


if __name__ == "__main__":
    try:
        main()
    except APIConnectionError as exc:
        sys.exit(f"error: no polymodal server answers at {exc.request.url} ({exc}); start one with "
                 "`polymodal serve --profile offline` or give --base-url")
