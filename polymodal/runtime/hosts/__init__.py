"""Where a tool's model work runs: in this process, in worker processes, or in Ray actors.

A model tool prepares its inputs where the request is (decoding files, so a bad file fails before
any model work), then hands the prepared items to a *host*, which runs the tool's model steps
(``load`` once, then ``encode -> forward -> decode``) where the model lives and returns one output
per item. Tools never talk to a torch device directly, so moving a model to another process, GPU or
machine changes no tool code. The micro-batcher (:mod:`polymodal.runtime.batching`) sits in front of
whichever host a tool has: concurrent calls are coalesced first, then the batch goes to the host.

======================  =====================================================================
``inprocess`` (default)  the agent's own process: fastest, but a hung call keeps its thread and
                         a crash in native code takes the agent down
``process``              worker processes (one per device, or one per tool with ``own_worker``):
                         a call past its deadline kills its worker; a segfault, ``abort()`` or
                         out-of-memory becomes a typed error and the agent lives on
``ray``                  Ray actors, one per tool configuration, placed by Ray over a cluster
                         with the tool's ``ray_actor_options`` (``num_gpus`` may be fractional)
======================  =====================================================================

Choose per agent (``Settings(host="process")``), per tool (``Captioner(host="ray")``), in the
config file (``host = "process"`` at the top, or under ``[tools.<name>]``) or with
``POLYMODAL_HOST``; the most specific wins.

A host runs a :class:`~polymodal.runtime.calls.HostedModel` (what it needs of a model tool: its
name, signature, a portable copy, ``run_here``) on the terms of one
:class:`~polymodal.runtime.calls.ModelCall` (its deadline, where its progress goes): it never
imports the tools above it nor calls back into them.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Protocol

from polymodal.errors import ConfigurationError
from polymodal.runtime.calls import HostedModel, ModelCall

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools

HOST_NAMES = ("inprocess", "process", "ray")


class Host(Protocol):
    """Runs a tool's model steps on prepared items somewhere, honouring the call's deadline."""

    name: str

    def run(self, tool: HostedModel, prepared: list[Any], call: ModelCall) -> list[Any]:
        """Return one output per item; raise the tool's typed error, or ToolTimeout past ``call.deadline``."""
        ...


class InProcessHost:
    """Runs the model steps right here, on the calling thread (the batcher's or the step's)."""

    name = "inprocess"

    def run(self, tool: HostedModel, prepared: list[Any], call: ModelCall) -> list[Any]:
        return list(tool.run_here(prepared, call.progress))


_HOSTS: dict[str, Host] = {"inprocess": InProcessHost()}
_LOCK = threading.Lock()


def default_host() -> str:
    """The host named by ``POLYMODAL_HOST``, else ``inprocess``."""
    return os.environ.get("POLYMODAL_HOST", "").strip().lower() or "inprocess"


def host_named(name: str | None) -> Host:
    """The process-wide host called ``name`` (None: :func:`default_host`), made on first use."""
    key = (name or default_host()).strip().lower()
    with _LOCK:
        host = _HOSTS.get(key)
        if host is not None:
            return host
        if key == "process":
            from polymodal.runtime.hosts.process import ProcessHost

            host = ProcessHost()
        elif key == "ray":
            from polymodal.runtime.hosts.ray_host import RayHost

            host = RayHost()
        else:
            msg = f"unknown host {name!r} (known: {', '.join(HOST_NAMES)})"
            raise ConfigurationError(msg)
        _HOSTS[key] = host
        return host
