"""The FastAPI app factory: ``create_app(settings) -> FastAPI``.

Endpoints live under ``/v1``; see ``docs/serving.md``. Errors are :class:`ErrorBody` JSON with a
4xx status (``ToolError``/``ConfigError`` 422, ``DatasetError`` 400, refused path 403, bad token
401, body too large 413); unexpected failures are logged and answered 500 without a trace.

``/tools/call`` and ``/render`` are async: the checks and the tool's geometry (tens of
microseconds, less than a hop to a worker thread) run on the event loop, and only the slow steps
go to the thread pool (``MEDGYM_THREADS``): decoding an image not yet in memory, rendering a
view not in the rendered-view LRU, PNG/WebP encoding, base64 for inline pixels. ``POST``s to
them are answered by :class:`~medgym.serving.hot.HotPathMiddleware` ahead of FastAPI's routing;
the FastAPI routes on the same paths document them in the OpenAPI schema and run the same code.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import anyio
import cv2
import numpy as np
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

import medgym
from medgym.core.view import ViewSpec
from medgym.data.store import ImageStore, default_store
from medgym.errors import ConfigError, DatasetError, MedGymError, ToolError
from medgym.serving.body import parse_body
from medgym.serving.encoding import MEDIA_TYPES, pixel_body
from medgym.serving.errors import UnexpectedErrorMiddleware
from medgym.serving.hot import HotHandler, HotPathMiddleware
from medgym.serving.offload import Offload, WorkerLost
from medgym.serving.protocol import set_head_limits
from medgym.serving.quota import ClientBudgets, ClientKeyMiddleware, OverQuota
from medgym.serving.schemas import (
    ErrorBody,
    Health,
    ImageDescription,
    RegisterRequest,
    RenderRequest,
    ToolCallRequest,
    ToolCallResponse,
    TurnRequest,
    TurnResponse,
)
from medgym.serving.security import BearerTokenMiddleware, BodyLimitMiddleware, BodyTooLargeError
from medgym.serving.service import LARGE_RENDER_PIXELS, AccessError, ToolService, encoded_image
from medgym.serving.settings import ServerSettings
from medgym.serving.work import ServerBusy, WorkQueue
from medgym.tools import TOOLS

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_F = TypeVar("_F", bound=Callable[..., Any])

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Bad input (not an image, corrupt, too many pixels)"),
        (401, "Missing or wrong bearer token"),
        (403, "Path outside the data root"),
        (413, "Body too large"),
        (422, "Tool error or invalid request; `detail` is the message the model would see"),
        (429, "This client's share of heavy work is spent; retry after `Retry-After` s"),
        (503, "Busy: every worker taken and the waiting line full; retry after `Retry-After` s"),
    )
}
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (OverQuota, 429),
    (ServerBusy, 503),
    (WorkerLost, 503),
    (AccessError, 403),
    (ToolError, 422),
    (ConfigError, 422),
    (DatasetError, 400),
    (MedGymError, 400),
)


def _with_errors(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Route options with the shared error answers documented (and the route's own on top)."""
    return {**kwargs, "responses": {**_ERRORS, **kwargs.get("responses", {})}}


def _error(code: int, detail: str, error: str, headers: dict[str, str] | None = None) -> Response:
    body = ErrorBody(detail=detail, error=error).model_dump()
    return JSONResponse(body, status_code=code, headers=headers)


def _json(model: BaseModel) -> Response:
    """Serialise once with pydantic-core (FastAPI would validate and encode it again)."""
    return Response(model.model_dump_json(), media_type="application/json")


#: Paths under ``/v1`` answered without a token (load balancers probe them).
_OPEN_PATHS = frozenset({"/v1/health", "/v1/ready"})

#: Encodings cheap enough to write on the event loop (raw: no copy; npy: one copy).
_INLINE_ENCODINGS = ("raw", "npy")


def _shape_header(pixels: np.ndarray) -> str:
    return ",".join(str(n) for n in pixels.shape)


def _tool_response(
    result: ToolCallResponse, pixels: np.ndarray | None, encoding: str, binary: bool
) -> Response:
    """The pixels as the body (``binary``) with the result in a header, or the result as JSON."""
    if pixels is not None and binary:
        return _pixel_response(
            pixels, encoding, {"X-Medgym-Result": result.model_dump_json(ensure_ascii=True)}
        )
    result.image = encoded_image(pixels, encoding)
    return _json(result)


def _pixel_response(
    pixels: np.ndarray, encoding: str, headers: dict[str, str] | None = None
) -> Response:
    """The pixels as the body in ``encoding``, their shape in ``X-Medgym-Shape``."""
    data, media = pixel_body(pixels, encoding)
    return Response(
        data, media_type=media, headers={**(headers or {}), "X-Medgym-Shape": _shape_header(pixels)}
    )


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:8]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def _error_response(exc: Exception) -> Response | None:
    """The answer to an exception the server knows (a 4xx :class:`ErrorBody`); else ``None``.

    One mapping for FastAPI's exception handlers and the hot path (:mod:`medgym.serving.hot`).
    """
    if isinstance(exc, MedGymError):
        code = next(c for cls, c in _STATUS if isinstance(exc, cls))
        headers = None
        if isinstance(exc, (ServerBusy, OverQuota, WorkerLost)):
            headers = {"retry-after": str(exc.retry_after)}
        return _error(code, str(exc), type(exc).__name__, headers)
    if isinstance(exc, RequestValidationError):
        return _error(422, _describe_validation(exc), "ValidationError")
    if isinstance(exc, StarletteHTTPException):
        if isinstance(exc.__cause__, BodyTooLargeError):
            # FastAPI turns any failure while reading the body into a 400; a chunked body past
            # the limit is a 413, and the rest of it is unread: close the connection.
            return _error(413, str(exc.__cause__), "RequestTooLarge", {"connection": "close"})
        headers = dict(exc.headers) if exc.headers else None
        return _error(exc.status_code, str(exc.detail), "HTTPError", headers)
    return None


def _install_error_handlers(app: FastAPI) -> None:
    async def known(request: Request, exc: Exception) -> Response:
        answer = _error_response(exc)
        if answer is None:
            raise TypeError(f"no error answer for {type(exc).__name__}")
        return answer

    for cls in (MedGymError, RequestValidationError, StarletteHTTPException):
        app.add_exception_handler(cls, known)
    # anything else ends in UnexpectedErrorMiddleware (outermost): one bounded log, a bare 500
    # with Connection: close, and no second traceback from Starlette and uvicorn


def _make_store(settings: ServerSettings) -> ImageStore:
    """The server's image store (its own folder, or the process's), under the upload quota."""
    store = (
        ImageStore(Path(settings.store_dir)) if settings.store_dir is not None else default_store()
    )
    store.set_quota(max_bytes=settings.store_max_bytes, max_items=settings.store_max_items)
    return store


def _add_middleware(app: FastAPI, settings: ServerSettings, hot: dict[str, HotHandler]) -> None:
    """Innermost first: hot path, body limit, token, CORS, client address, the 500 catcher."""
    app.add_middleware(HotPathMiddleware, handlers=hot, on_error=_error_response)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    token = settings.token.get_secret_value() if settings.token else None
    if token is not None:
        app.add_middleware(BearerTokenMiddleware, token=token, open_paths=_OPEN_PATHS)
    if settings.cors_origins:  # preflights need no token
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )  # fmt: skip
    app.add_middleware(ClientKeyMiddleware)  # who to charge heavy work to
    app.add_middleware(UnexpectedErrorMiddleware)  # outermost of ours


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the tool server.

    Args:
        settings: Limits, token and roots; read from ``MEDGYM_*`` environment variables if omitted.

    Returns:
        The app; run it with ``uvicorn`` (``medgym serve`` does).
    """
    settings = settings or ServerSettings()
    # this worker's uvicorn protocol reads them
    set_head_limits(settings.max_header_bytes, settings.refusal_delay)
    store = _make_store(settings)
    if settings.store_dir is not None:
        # store:// references resolve through the default store; point it at the shared folder.
        from medgym.data.store import set_default_store

        set_default_store(store)
    offload = None
    if settings.heavy_processes > 0:
        offload = Offload(settings.heavy_processes, settings.heavy_nice)
    service = ToolService(settings, store, offload)
    budgets = None
    if settings.client_heavy_rate > 0:
        budgets = ClientBudgets(
            settings.client_heavy_rate,
            max(settings.client_heavy_burst, settings.client_heavy_rate),
        )
    heavy = WorkQueue("decoding", min(settings.heavy_threads, settings.threads),
                      settings.max_queued, nice=settings.heavy_nice, budgets=budgets,
                      refusal_delay=settings.refusal_delay)  # fmt: skip
    light = WorkQueue("rendering", settings.threads, settings.max_queued)

    def queue_for(view: ViewSpec) -> WorkQueue:
        """The queue of a render: one over :data:`LARGE_RENDER_PIXELS` is heavy work."""
        w, h = view.out_size
        return heavy if w * h > LARGE_RENDER_PIXELS else light

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        cv_threads = cv2.getNumThreads()
        cv2.setNumThreads(settings.opencv_threads)
        if offload is not None:
            await anyio.to_thread.run_sync(offload.start)  # the first request does not wait
        try:
            yield
        finally:
            cv2.setNumThreads(cv_threads)
            if offload is not None:
                await anyio.to_thread.run_sync(offload.close)

    app = FastAPI(
        lifespan=lifespan,
        title="medgym tool server",
        version=medgym.__version__,
        description="Stateless image tools for medical VLM agents.",
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.service = service
    _install_error_handlers(app)
    version = medgym.__version__
    # Routes sit on the app itself: an included APIRouter is matched as a nested router, a few
    # microseconds more per request.
    open_get = functools.partial(app.get, tags=["health"])

    def api_get(path: str, **kwargs: Any) -> Callable[[_F], _F]:
        return app.get(path, **_with_errors(kwargs))

    def api_post(path: str, **kwargs: Any) -> Callable[[_F], _F]:
        return app.post(path, **_with_errors(kwargs))

    @open_get("/v1/health", response_model=Health)
    async def health() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok", version=version)

    @open_get("/v1/ready", response_model=Health, responses={503: {"model": Health}})
    def ready() -> Response:
        """Readiness: the store and data root are usable."""
        problems = []
        store_dir = settings.store_dir
        if store_dir is not None and not os.access(
            store_dir if store_dir.exists() else store_dir.parent, os.W_OK
        ):
            problems.append(f"store_dir {store_dir} is not writable")
        if settings.data_root is not None and not settings.data_root.is_dir():
            problems.append(f"data_root {settings.data_root} is not a folder")
        if problems:
            body = Health(status="unavailable", version=version, detail="; ".join(problems))
            return JSONResponse(body.model_dump(), status_code=503)
        return JSONResponse(Health(status="ok", version=version).model_dump())

    @api_get("/v1/tools")
    async def list_tools() -> list[dict[str, Any]]:
        """The flat OpenAI function schemas of every tool."""
        return TOOLS.schemas()

    @api_post(
        "/v1/images",
        response_model=ImageDescription,
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}
                },
            }
        },
    )
    async def upload_image(
        request: Request,
        filename: Annotated[str | None, Query(max_length=255, description="Name hint")] = None,
    ) -> ImageDescription:
        """Upload image bytes (PNG/JPEG/DICOM/NIfTI...); returns its ``store://`` reference."""
        data = await request.body()
        return await heavy.run(service.upload, data, filename)

    @api_post("/v1/images/register", response_model=ImageDescription)
    async def register_image(req: RegisterRequest) -> ImageDescription:
        """Describe an image the server can reach (a path under its data root, or a URI)."""
        if service.loaded([req.ref]) is not None:  # decoded already: no thread, no queue
            return service.describe(req.ref)
        return await heavy.run(service.describe, req.ref)

    async def run_tool_call(req: ToolCallRequest, accept: str) -> Response:
        encoding = req.encoding
        binary = encoding != "none" and MEDIA_TYPES[encoding] in accept
        images = service.loaded(req.images)
        if images is None:
            images = await heavy.run(service.load_all, req.images)
        result = service.run_tool(req, images)
        view = result.view
        if view is None or encoding == "none":
            return _tool_response(result, None, encoding, binary)
        ref, image = req.images[view.image_index], images[view.image_index]
        pixels = service.cached_pixels(ref, view)
        if pixels is not None and binary and encoding in _INLINE_ENCODINGS:
            return _tool_response(result, pixels, encoding, binary)

        def finish() -> Response:
            return _tool_response(result, service.render_loaded(ref, image, view), encoding, binary)

        return await queue_for(view).run(finish)

    async def run_render(req: RenderRequest) -> Response:
        images = service.loaded(req.images)
        if images is None:
            images = await heavy.run(service.load_all, req.images)
        service.check_view(req.view, images)
        ref, image = req.images[req.view.image_index], images[req.view.image_index]

        pixels = service.cached_pixels(ref, req.view)
        if pixels is not None and req.encoding in _INLINE_ENCODINGS:
            return _pixel_response(pixels, req.encoding)
        return await queue_for(req.view).run(
            lambda: _pixel_response(service.render_loaded(ref, image, req.view), req.encoding)
        )

    # The two hot endpoints are answered by medgym.serving.hot.HotPathMiddleware ahead of
    # FastAPI's routing and middleware: the body is parsed by pydantic-core in one step
    # (medgym.serving.body: same errors as FastAPI), and the same error mapping answers. The
    # FastAPI routes below, on the same paths, are what the OpenAPI schema documents; they run
    # the same code and answer only if the hot path is bypassed.
    async def call_tool_served(body: bytes, ctype: str | None, accept: str) -> Response:
        return await run_tool_call(parse_body(ToolCallRequest, body, ctype), accept)

    hot: dict[str, HotHandler] = {"/v1/tools/call": call_tool_served}

    @api_post(
        "/v1/tools/call",
        response_model=ToolCallResponse,
        responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}},
    )
    async def call_tool(req: ToolCallRequest, request: Request) -> Response:
        """Run a tool on a view history; a tool error is a 422 with the model's message.

        With ``encoding`` set, the new view's pixels come inline (base64 in ``image``), or, when
        ``Accept`` names the encoding's media type, as the raw body with the JSON result in the
        ``X-Medgym-Result`` header and the shape in ``X-Medgym-Shape`` (``height,width,1`` for a
        grayscale view, ``height,width,3`` for colour).
        """
        return await run_tool_call(req, request.headers.get("accept", ""))

    async def render_view_served(body: bytes, ctype: str | None, accept: str) -> Response:
        return await run_render(parse_body(RenderRequest, body, ctype))

    hot["/v1/render"] = render_view_served

    @api_post(
        "/v1/render",
        response_class=Response,
        responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}},
    )
    async def render_view(req: RenderRequest) -> Response:
        """A view's pixels; ``X-Medgym-Shape`` gives ``height,width,1`` (gray) or ``...,3``."""
        return await run_render(req)

    @api_post("/v1/turn", response_model=TurnResponse)
    async def apply_turn(req: TurnRequest) -> Response:
        """Apply a model turn as the episode session does (earlier turns replayed)."""
        return _json(await heavy.run(service.apply_turn, req))

    _add_middleware(app, settings, hot)
    return app
