"""Tests run with the network off: a stray download fails at once instead of hanging."""

from __future__ import annotations

import os
import socket
import time

import pytest
import pytest_socket


def test_hub_is_offline_for_every_test():
    assert os.environ["HF_HUB_OFFLINE"] == "1"
    from huggingface_hub import constants

    assert constants.HF_HUB_OFFLINE


@pytest.mark.filterwarnings("ignore:A test tried to use socket")
def test_sockets_are_blocked():
    started = time.perf_counter()
    with pytest.raises(pytest_socket.SocketBlockedError):
        socket.create_connection(("huggingface.co", 443), timeout=5)
    assert time.perf_counter() - started < 1
