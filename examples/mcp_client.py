"""Another MCP server's tools in a polymodal plan: ``python examples/mcp_client.py``.

The server here is polymodal itself (``polymodal mcp`` over stdio, the offline profile's packaged
models), spawned the way any MCP server is; ``mcp_tools`` turns what it lists into polymodal
tools, which plan, run and report like local ones. Point it at any other server instead:
``mcp_tools("stdio:npx some-mcp-server")`` or ``mcp_tools("http://host:8765/mcp", headers=...)``.
Needs the ``mcp`` extra.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from polymodal import Agent, PolymodalError, mcp_tools

MEDIA = Path(__file__).resolve().parent / "media"


def main() -> int:
    command = f"stdio:{sys.executable} -m polymodal.cli mcp --profile offline --allow-dir {MEDIA}"
    remote = mcp_tools(command, env=dict(os.environ), include=["ocr"])  # the server inherits this environment
    try:
        print("remote tools:", ", ".join(tool.name for tool in remote))
        reply = Agent(tools=remote).run("What does the sign say?", [MEDIA / "sign.png"])
        print(reply.text)
        print("steps:", ", ".join(f"{step.tool} ({step.status})" for step in reply.steps))
        return 0 if reply.outcome == "answered" else 1
    finally:
        remote[0].connection.close()


if __name__ == "__main__":
    try:
        sys.exit(main())
    except PolymodalError as exc:  # no mcp extra, or the server could not start: one line says why
        sys.exit(f"error: {exc}")
