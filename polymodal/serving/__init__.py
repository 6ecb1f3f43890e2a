"""``polymodal serve``: an HTTP API that OpenAI clients speak, and a web chat page, over one agent.

Serving is a client of the agent, like the command line: nothing below it knows it exists.
Install it with ``pip install 'polymodal[serve]'``; then ``create_app(agent)`` is an ASGI app
(``uvicorn.run(create_app(agent))``) and ``polymodal serve`` runs one for a profile.
"""

from __future__ import annotations

from polymodal.serving.app import SESSION_HEADER, create_app
from polymodal.serving.settings import ServeSettings

__all__ = ["SESSION_HEADER", "ServeSettings", "create_app"]
