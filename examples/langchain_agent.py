"""polymodal tools inside a LangChain agent (``langchain.agents.create_agent``).

The tools are ordinary LangChain tools: the agent's chat model calls them with file paths, and each
returns text for the model plus a typed artifact (a caption, a timestamped transcript) for you.

Run it as it is (examples/media, the tools of the profile this machine gets: offline, that is the
transcriber and OCR), or with your models (local folders, or hub ids on a machine with access)::

    python examples/langchain_agent.py photo.png voice.wav \
        --captioner-model ./models/blip --transcriber-model ./models/whisper-base

To keep the example runnable offline it drives the agent with a scripted tool-calling chat model;
in a real app pass any chat model that supports tool calling (ChatOpenAI, ChatOllama, ...).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from polymodal import PolymodalError
from polymodal.profiles import build_tools

MEDIA = Path(__file__).resolve().parent / "media"


class ScriptedToolCaller(BaseChatModel):
    """A stand-in chat model: calls an image tool and the transcriber, then answers from their results."""

    photo: str
    voice: str
    image_tool: str = "captioner"

    @property
    def _llm_type(self) -> str:
        return "scripted-tool-caller"

    def bind_tools(self, tools: Any, **kwargs: Any) -> ScriptedToolCaller:
        return self  # the script already knows the tools

    def _generate(self, messages: list[BaseMessage], stop: Any = None, run_manager: Any = None,
                  **kwargs: Any) -> ChatResult:
        results = [m for m in messages if isinstance(m, ToolMessage)]
        if not results:
            message = AIMessage(content="", tool_calls=[
                {"name": self.image_tool, "args": {"image": self.photo}, "id": "call_1"},
                {"name": "transcriber", "args": {"audio": self.voice}, "id": "call_2"},
            ])
        else:
            found = "; ".join(f"{m.name} said {m.content!r}" for m in results)
            message = AIMessage(content=f"Here is what I found: {found}.")
        return ChatResult(generations=[ChatGeneration(message=message)])


def build_agent(model: BaseChatModel, tools: Sequence[Any]) -> Any:
    """A LangChain 1.x agent with polymodal tools, as you would build it with any other tools."""
    from langchain.agents import create_agent

    return create_agent(model, tools=list(tools),
                        system_prompt="Use the tools to look at and listen to the user's files.")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", nargs="?", default=str(MEDIA / "sign.png"))
    parser.add_argument("voice", nargs="?", default=str(MEDIA / "voice-note.wav"))
    parser.add_argument("--captioner-model", help="folder or hub id (default: the profile's)")
    parser.add_argument("--transcriber-model", help="folder or hub id (default: the profile's)")
    args = parser.parse_args(argv)
    overrides = {"captioner": args.captioner_model, "transcriber": args.transcriber_model}
    # The profile's tools drop in as they are (the built-in set, default_tools(), would do as well).
    tools = build_tools(overrides={tool: model for tool, model in overrides.items() if model})
    image_tool = "captioner" if any(t.name == "captioner" for t in tools) else "ocr"  # offline: no captioner
    agent = build_agent(ScriptedToolCaller(photo=args.photo, voice=args.voice, image_tool=image_tool), tools)
    state = agent.invoke({"messages": [HumanMessage("What is in the photo, and what does the voice note say?")]})
    for message in state["messages"]:
        if isinstance(message, ToolMessage):
            print(f"[{message.name}] {message.content}  (artifact: {type(message.artifact).__name__})")
    print(state["messages"][-1].content)
    return state


if __name__ == "__main__":
    try:
        main()
    except PolymodalError as exc:
        sys.exit(f"error: {exc}")
