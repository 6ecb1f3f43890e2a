"""Sending Python objects over a pipe without copying large arrays into the pickle stream.

Pickle protocol 5 hands every buffer it can (a numpy array's memory: audio samples, pixels) to a
callback instead of copying it into the byte stream. Those buffers are written to the pipe
straight from the array's memory and read back into writable bytearrays that the unpickled arrays
use as they are: one copy through the kernel, none in Python on either side (the in-band way copies
each array once into the pickle bytes and once more out of them).
"""

from __future__ import annotations

import pickle
from multiprocessing.connection import Connection
from typing import Any

__all__: list[str] = []  # internal module (docs/api.md): import public names from polymodal or polymodal.tools


def send(conn: Connection, obj: Any) -> None:
    """Write ``obj``: the pickle stream, then each out-of-band buffer as a message of its own."""
    buffers: list[pickle.PickleBuffer] = []
    data = pickle.dumps(obj, protocol=5, buffer_callback=buffers.append)
    views = [buffer.raw() for buffer in buffers]
    conn.send((len(data), [view.nbytes for view in views]))
    conn.send_bytes(data)
    for view in views:
        conn.send_bytes(view)


def receive(conn: Connection) -> Any:
    """Read what :func:`send` wrote; arrays come back writable, backed by the received buffers."""
    size, sizes = conn.recv()
    data = conn.recv_bytes(size) if size else b""
    buffers = []
    for nbytes in sizes:
        buffer = bytearray(nbytes)
        if nbytes:
            conn.recv_bytes_into(buffer)
        else:
            conn.recv_bytes()
        buffers.append(buffer)
    return pickle.loads(data, buffers=buffers)
