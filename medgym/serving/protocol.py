"""uvicorn's HTTP protocol with a bound on request head size (431 past it).

httptools, uvicorn's fast parser, has no limit on the request line and headers: a 60 MB header
cost 3.4 s of CPU and 120 MB 16 s, while ``/health`` went from 1.4 ms to 3 s. The protocol below
counts the bytes of each request head as they arrive and answers ``431 Request Header Fields Too
Large`` (connection closed) once they pass :data:`MAX_HEADER_BYTES`; at most one network read
past the bound is parsed. Without httptools, uvicorn's h11 protocol gets the same bound through
``h11_max_incomplete_event_size`` (:func:`medgym.serving.run.uvicorn_options`).
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "MAX_HEADER_BYTES",
    "BoundedHttpToolsProtocol",
    "bounded_http_protocol",
    "set_max_header_bytes",
]

MAX_HEADER_BYTES = 64 * 1024
"""Largest request line plus headers accepted (bytes); ``MEDGYM_MAX_HEADER_BYTES``."""


def set_max_header_bytes(limit: int) -> None:
    """Set the bound for this process (``create_app`` does, from the server settings)."""
    global MAX_HEADER_BYTES
    MAX_HEADER_BYTES = int(limit)


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
            """Count the head's bytes, parse, refuse once the head is over the bound."""
            if self._in_head:
                self._head_bytes += len(data)
            super().data_received(data)
            if self._in_head and self._head_bytes > MAX_HEADER_BYTES:
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
            self._in_head = False
            if self.transport.is_closing():
                return
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
