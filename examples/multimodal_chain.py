"""MultimodalChain in LCEL: ``prompt | MultimodalChain | parser``, and inside ``RunnableParallel``.

The prompt template carries the image as a standard content block, the chain answers with
polymodal's tools, and an ordinary output parser takes the answer string. Run::

    python examples/multimodal_chain.py [photo.png] [--captioner-model ./models/blip]

With no ``llm`` the agent plans by the attachment's kind and answers with a template, which runs
offline (with the offline profile an image is read by OCR: there is no packaged captioner); pass
``llm=`` (any LangChain chat model) for planning and a written answer.
"""

from __future__ import annotations

import argparse
import base64
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda, RunnableParallel

from polymodal import Agent, PolymodalError
from polymodal.integrations.langchain import MultimodalChain
from polymodal.profiles import build_tools
from polymodal.tools import Captioner

MEDIA = Path(__file__).resolve().parent / "media"

PROMPT = ChatPromptTemplate.from_messages([
    ("human", [
        {"type": "text", "text": "Describe this photo for {audience}."},
        {"type": "image", "base64": "{image}", "mime_type": "image/png"},
    ]),
])


def build_chains(captioner_model: str | None = None, llm: Any = None) -> tuple[Any, Any]:
    """The two compositions: a sequence, and a parallel map using it twice."""
    tools = [Captioner(model=captioner_model)] if captioner_model else build_tools()  # the profile's tools
    chain = MultimodalChain(Agent(llm=llm, tools=tools))
    describe = PROMPT | chain | StrOutputParser()
    both = RunnableParallel(
        description=describe,
        shout=describe | RunnableLambda(lambda text: text.upper(), name="shout"),
    )
    return describe, both


def main(argv: Sequence[str] | None = None) -> dict[str, str]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("photo", nargs="?", default=str(MEDIA / "sign.png"))
    parser.add_argument("--captioner-model")
    args = parser.parse_args(argv)
    image = base64.b64encode(Path(args.photo).read_bytes()).decode("ascii")
    describe, both = build_chains(args.captioner_model)
    print(describe.invoke({"audience": "a child", "image": image}))
    out: dict[str, str] = both.invoke({"audience": "a museum label", "image": image})
    print(out)
    return out


if __name__ == "__main__":
    try:
        main()
    except PolymodalError as exc:
        sys.exit(f"error: {exc}")
