"""Issue 18 D4: request heads are bounded (431), on a real uvicorn with medgym's options."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from medgym.serving.app import create_app
from medgym.serving.run import uvicorn_options
from medgym.serving.settings import ServerSettings


@contextlib.contextmanager
def _serve(settings: ServerSettings) -> Iterator[int]:
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    opts = uvicorn_options(settings.model_copy(update={"port": port}))
    del opts["workers"]
    server = uvicorn.Server(uvicorn.Config(create_app(settings), lifespan="off", **opts))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(timeout=10)


def _raw(port: int, head: bytes, *, chunk: int = 64 * 1024) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        try:
            for i in range(0, len(head), chunk):
                s.sendall(head[i : i + chunk])
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed on us mid-head: what we want
        out = b""
        with contextlib.suppress(ConnectionResetError):
            while data := s.recv(65536):
                out += data
        return out


def test_an_oversized_head_is_431_and_health_stays_fast() -> None:
    settings = ServerSettings(max_header_bytes=16 * 1024, refusal_delay=0)
    with _serve(settings) as port:
        huge = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * 20_000_000 + b"\r\n\r\n"
        start = time.perf_counter()
        answer = _raw(port, huge)
        took = time.perf_counter() - start
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert b"connection: close" in answer.lower()
        assert took < 2.0  # refused at the bound, not after 20 MB of parsing
        ok = httpx.get(f"http://127.0.0.1:{port}/v1/health", headers={"X-Ok": "y" * 8000})
        assert ok.status_code == 200  # a head under the bound is served


def test_a_431_is_held_while_other_calls_are_served(monkeypatch: pytest.MonkeyPatch) -> None:
    from medgym.serving import protocol

    if protocol.BoundedHttpToolsProtocol is None:
        pytest.skip("no httptools: uvicorn's h11 bound answers at once")
    settings = ServerSettings(max_header_bytes=16 * 1024, refusal_delay=0.6)
    # an unfinished head past the bound (a finished one read in one go is parsed and served)
    head = b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Junk: " + b"a" * 40_000
    with _serve(settings) as port:
        answers: list[tuple[float, bytes]] = []

        def attack() -> None:
            start = time.perf_counter()
            answer = _raw(port, head)
            answers.append((time.perf_counter() - start, answer))

        attacker = threading.Thread(target=attack)
        attacker.start()
        time.sleep(0.1)
        start = time.perf_counter()
        assert httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200
        assert time.perf_counter() - start < 0.3  # served while the refusal is held
        attacker.join(timeout=10)
        ((took, answer),) = answers
        assert answer.startswith(b"HTTP/1.1 431"), answer[:200]
        assert 0.55 <= took < 3.0, took
        # past MAX_HELD held refusals, the next goes at once
        monkeypatch.setattr(protocol, "MAX_HELD", 0)
        start = time.perf_counter()
        assert _raw(port, head).startswith(b"HTTP/1.1 431")
        assert time.perf_counter() - start < 0.5
    assert protocol._held == 0  # every held refusal was sent and counted out


def test_options_bound_heads_with_either_http_stack() -> None:
    from medgym.serving import protocol
    from medgym.serving.protocol import BoundedHttpToolsProtocol

    opts = uvicorn_options(
        ServerSettings(max_header_bytes=32 * 1024, keep_alive_seconds=7, refusal_delay=0.25)
    )
    assert (protocol.MAX_HEADER_BYTES, protocol.REFUSAL_DELAY) == (32 * 1024, 0.25)
    assert opts["h11_max_incomplete_event_size"] == 32 * 1024
    assert opts["timeout_keep_alive"] == 7
    assert opts["http"] is (BoundedHttpToolsProtocol or "h11")


@pytest.mark.parametrize("value", [100, 10**9])
def test_head_bound_is_range_checked(value: int) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        ServerSettings(max_header_bytes=value)
