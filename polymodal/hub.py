"""Can the model hub be reached? Asked once per process, answered in at most ``PROBE_SECONDS``.

Why this exists: when the Hugging Face hub cannot be reached, huggingface_hub retries each file of
a load with backoff (1+2+4+8+8 s), a load fetches several files, and each retry prints a line:
a model that is simply not on the machine took 25-170 s to fail. So before the first load of a hub
id, one short request asks whether the hub answers at all. If it does not (no DNS, refused, no
answer in time), the process switches huggingface_hub to offline mode — what ``HF_HUB_OFFLINE=1``
does, set at run time: models already in the local hub cache still load from there, and every
other hub load fails at once, with no retries and no log lines. A connection error during a load
(the hub went away after the probe) switches the same way, so it is paid once, not per model.

Nothing here runs when only local folders and packaged models are used: no request, no delay.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

__all__ = ["PROBE_SECONDS", "HubStatus", "endpoint", "go_offline", "is_connection_error", "offline", "status"]

logger = logging.getLogger(__name__)

PROBE_SECONDS = 2.0
"""The most a probe may take, DNS included (it runs on a thread that is abandoned at this deadline)."""


@dataclass(frozen=True)
class HubStatus:
    """What is known about the hub in this process."""

    reachable: bool
    detail: str
    """Why, in words: "offline (HF_HUB_OFFLINE=1)", "https://huggingface.co answered in 0.2 s", ..."""
    seconds: float = 0.0
    """How long the probe took."""
    probed: bool = True
    """False when hub access was switched off by a setting (``HF_HUB_OFFLINE``): no probe, no fault."""


_lock = threading.Lock()
_status: HubStatus | None = None
probes = 0
"""How many probes this process made (at most one; tests read it)."""


def _constants() -> Any:
    from huggingface_hub import constants

    return constants


def endpoint() -> str:
    """The hub's address: ``HF_ENDPOINT`` as huggingface_hub read it, by default https://huggingface.co."""
    return str(_constants().ENDPOINT)


def offline() -> bool:
    """Whether hub access is off: ``HF_HUB_OFFLINE`` was set, or this process found the hub unreachable."""
    return bool(_constants().HF_HUB_OFFLINE)


def status() -> HubStatus:
    """Whether the hub can be used, probing it on the first call only (bounded by ``PROBE_SECONDS``).

    When the probe fails, huggingface_hub is switched to offline mode for the rest of the process.
    """
    global _status, probes
    with _lock:
        if _status is None:
            if offline():
                _status = HubStatus(False, "offline (HF_HUB_OFFLINE=1)", probed=False)
            else:
                probes += 1
                _status = _probe(endpoint())
                if not _status.reachable:
                    _switch_off(_status.detail)
        return _status


def go_offline(reason: str) -> None:
    """Stop every later hub request of this process: a load just failed to connect (``reason``)."""
    global _status
    with _lock:
        if _status is None or _status.reachable:
            _status = HubStatus(False, reason)
            _switch_off(reason)


def _switch_off(reason: str) -> None:
    # Read by huggingface_hub (and so transformers, diffusers, sentence-transformers) at every request.
    _constants().HF_HUB_OFFLINE = True
    logger.info("model hub unreachable (%s): using local folders and cached models only", reason)


def _probe(url: str) -> HubStatus:
    """One HEAD request to the hub through huggingface_hub's own HTTP client (its proxies, its certificates).

    It runs on a daemon thread so that even a DNS lookup that hangs cannot hold the caller past the
    deadline.
    """
    box: dict[str, Any] = {}

    def ask() -> None:
        try:
            from huggingface_hub.utils import get_session

            box["code"] = get_session().head(url, timeout=PROBE_SECONDS, follow_redirects=False).status_code
        except Exception as exc:  # noqa: BLE001 - any failure to get an answer means "unreachable"
            box["error"] = exc

    started = time.perf_counter()
    thread = threading.Thread(target=ask, name="polymodal-hub-probe", daemon=True)
    thread.start()
    thread.join(PROBE_SECONDS)
    seconds = time.perf_counter() - started
    if "code" in box:
        return HubStatus(True, f"{url} answered in {seconds:.1f} s", seconds)
    if "error" in box:
        return HubStatus(False, f"{url} cannot be reached: {_reason(box['error'])}", seconds)
    return HubStatus(False, f"{url} did not answer within {PROBE_SECONDS:g} s", seconds)


def _reason(exc: BaseException) -> str:
    """The innermost useful message: ``[Errno -2] Name or service not known``, ``Connection refused``."""
    seen = {id(exc)}
    while (inner := exc.__cause__ or exc.__context__) is not None and id(inner) not in seen:
        seen.add(id(inner))
        exc = inner
    return str(exc) or type(exc).__name__


_CONNECTION_WORDS = ("name or service not known", "connection refused", "connecterror", "timed out",
                     "temporary failure in name resolution", "network is unreachable", "nodename nor servname",
                     "cannot reach", "connection reset")


def is_connection_error(exc: BaseException) -> bool:
    """True when ``exc`` (or anything in its cause chain) says the hub could not be reached at all."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        name = type(current).__name__
        if name in ("ConnectError", "ConnectTimeout", "ReadTimeout", "ConnectionError", "gaierror",
                    "ConnectionRefusedError") or any(w in str(current).lower() for w in _CONNECTION_WORDS):
            return True
        current = current.__cause__ or current.__context__
    return False
