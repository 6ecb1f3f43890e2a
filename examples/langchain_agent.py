"""polymodal tools inside a LangChain agent (``langchain.agents.create_agent``).

The tools are ordinary LangChain tools: the agent's chat model calls them with file paths, and each
returns text for the model plus a typed artifact (a caption, a timestamped transcript) for you.

Run it with local model folders (or hub ids on a machine with access)::

    python examples/langchain_agent.py photo.png voice.wav \
        --captioner-model ./models/blip --transcriber-model ./models/whisper-base

To keep the example runnable offline it drives the agent with a scripted tool-calling chat model;
in a real app pass any chat model that supports tool calling (ChatOpenAI, ChatOllama, ...).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from polymodal.tools import Captioner, Transcriber, default_tools


class ScriptedToolCaller(BaseChatModel):
    """A stand-in chat model: calls the captioner and transcriber, then answers from their results."""

    photo: str
    voice: str

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
                {"name": "captioner", "args": {"image": self.photo}, "id": "call_1"},
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
    parser.add_argument("photo")
    parser.add_argument("voice")
    parser.add_argument("--captioner-model", help="folder or hub id (default: the captioner's default)")
    parser.add_argument("--transcriber-model", help="folder or hub id (default: the transcriber's default)")
    args = parser.parse_args(argv)
    tools = default_tools()  # the built-in set drops in as it is; pick models per tool when you need to
    tools = [Captioner(model=args.captioner_model) if t.name == "captioner" and args.captioner_model else
             Transcriber(model=args.transcriber_model) if t.name == "transcriber" and args.transcriber_model else t
             for t in tools]
    agent = build_agent(ScriptedToolCaller(photo=args.photo, voice=args.voice), tools)
    state = agent.invoke({"messages": [HumanMessage("What is in the photo, and what does the voice note say?")]})
    for message in state["messages"]:
        if isinstance(message, ToolMessage):
            print(f"[{message.name}] {message.content}  (artifact: {type(message.artifact).__name__})")
    print(state["messages"][-1].content)
    return state


if __name__ == "__main__":
    main()
