"""uvicorn's HTTP protocol with a bound on request head size (431 past it).

httptools, uvicorn's fast parser, has no limit on the request line and headers: a 60 MB header
cost 3.4 s of CPU and 120 MB 16 s, while ``/health`` went from 1.4 ms to 3 s. The protocol below
counts the bytes of each request head as they arrive and answers ``431 Request Header Fields Too
Large`` (connection closed) once they pass :data:`MAX_HEADER_BYTES`; at most one network read
past the bound is parsed. Without httptools, uvicorn's h11 protocol gets the same bound through
``h11_max_incomplete_event_size`` (:func:`medgym.serving.run.uvicorn_options`).

The refusal is held for :data:`REFUSAL_DELAY` seconds (reading paused) before it is sent: a
client in a loop of oversized heads got a 431 in a fraction of a millisecond and came straight
back, 830 connections a second that the event loop served before anyone else's calls (the good
client's p99 2.2x its quiet p99 in ``benchmarks/bench_server.py``, this attack alone). Held, the
same loop makes one connection a second. No legitimate client sends a head of 64 KB. At most
:data:`MAX_HELD` refusals are held at once; past that they are sent at once, so a client with
many parallel connections cannot make the server keep them all.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MAX_HEADER_BYTES",
    "MAX_HELD",
    "REFUSAL_DELAY",
    "BoundedHttpToolsProtocol",
    "bounded_http_protocol",
    "set_head_limits",
]

MAX_HEADER_BYTES = 64 * 1024
"""Largest request line plus headers accepted (bytes); ``MEDGYM_MAX_HEADER_BYTES``."""
REFUSAL_DELAY = 1.0
"""Seconds a 431 is held before it is sent; ``MEDGYM_REFUSAL_DELAY`` (0: at once)."""
MAX_HELD = 256
"""Most 431s held at once (per worker process); past it they go at once."""
_held = 0


def set_head_limits(max_bytes: int, refusal_delay: float = REFUSAL_DELAY) -> None:
    """Set the head bound and the refusal delay for this process (``create_app`` does)."""
    global MAX_HEADER_BYTES, REFUSAL_DELAY
    MAX_HEADER_BYTES, REFUSAL_DELAY = int(max_bytes), float(refusal_delay)


def bounded_http_protocol() -> Any:
    """Uvicorn's httptools protocol class with the head bound, or ``None`` without httptools."""
    return BoundedHttpToolsProtocol


try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools: uvicorn_options picks h11 with the same bound
    BoundedHttpToolsProtocol: Any = None
else:

    class BoundedHttpToolsProtocol(HttpToolsProtocol):  # type: ignore[no-redef]
        """``HttpToolsProtocol`` refusing a request head over :data:`MAX_HEADER_BYTES`."""

        _head_bytes = 0
        _in_head = True

        def data_received(self, data: bytes) -> None:
            """Parse, count the head's bytes, refuse once the head is over the bound."""
            super().data_received(data)
            # counted after parsing: a read that begins a request has just reset the count
            if self._in_head:
                self._head_bytes += len(data)
                if self._head_bytes > MAX_HEADER_BYTES:
                    self._refuse()

        def on_message_begin(self) -> None:
            """A new request: count its head from zero."""
            self._in_head, self._head_bytes = True, 0
            super().on_message_begin()

        def on_headers_complete(self) -> None:
            """The head is complete: stop counting."""
            self._in_head = False
            super().on_headers_complete()

        def _refuse(self) -> None:
            global _held
            self._in_head = False
            if self.transport.is_closing():
                return
            if REFUSAL_DELAY > 0 and _held < MAX_HELD:
                _held += 1
                self.transport.pause_reading()  # nothing more is read or parsed
                self.loop.call_later(REFUSAL_DELAY, self._send_held_refusal)
                return
            self._send_refusal()

        def _send_held_refusal(self) -> None:
            global _held
            _held -= 1
            if not self.transport.is_closing():  # the client may have given up meanwhile
                self._send_refusal()

        def _send_refusal(self) -> None:
            msg = f"request head over {MAX_HEADER_BYTES} bytes"
            self.logger.debug("refused a request head of over %d bytes", MAX_HEADER_BYTES)
            self.transport.write(
                b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
                b"content-type: text/plain; charset=utf-8\r\n"
                + f"content-length: {len(msg)}\r\n".encode()
                + b"connection: close\r\n\r\n"
                + msg.encode()
            )
            self.transport.close()
