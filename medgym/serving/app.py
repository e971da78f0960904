"""The FastAPI app factory: ``create_app(settings) -> FastAPI``.

Endpoints live under ``/v1``; see ``docs/serving.md``. Errors are :class:`ErrorBody` JSON with a
4xx status (``ToolError``/``ConfigError`` 422, ``DatasetError`` 400, refused path 403, bad token
401, body too large 413); unexpected failures are logged and answered 500 without a trace.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

import anyio
from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

import medgym
from medgym.data.store import ImageStore, default_store
from medgym.errors import ConfigError, DatasetError, MedGymError, ToolError
from medgym.serving.encoding import MEDIA_TYPES, encode_pixels
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
from medgym.serving.security import BodyLimitMiddleware, make_token_check
from medgym.serving.service import AccessError, ToolService, encoded_image
from medgym.serving.settings import ServerSettings
from medgym.tools import TOOLS

__all__ = ["create_app"]

logger = logging.getLogger(__name__)

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorBody, "description": text}
    for code, text in (
        (400, "Bad input (not an image, corrupt, too many pixels)"),
        (401, "Missing or wrong bearer token"),
        (403, "Path outside the data root"),
        (413, "Body too large"),
        (422, "Tool error or invalid request; `detail` is the message the model would see"),
    )
}
_STATUS: tuple[tuple[type[Exception], int], ...] = (
    (AccessError, 403),
    (ToolError, 422),
    (ConfigError, 422),
    (DatasetError, 400),
    (MedGymError, 400),
)


def _error(code: int, detail: str, error: str, headers: dict[str, str] | None = None) -> Response:
    body = ErrorBody(detail=detail, error=error).model_dump()
    return JSONResponse(body, status_code=code, headers=headers)


def _json(model: BaseModel) -> Response:
    """Serialise once with pydantic-core (FastAPI would validate and encode it again)."""
    return Response(model.model_dump_json(), media_type="application/json")


def _describe_validation(exc: RequestValidationError) -> str:
    parts = []
    for e in exc.errors()[:8]:
        loc = ".".join(str(x) for x in e.get("loc", ()) if x != "body") or "body"
        parts.append(f"{loc}: {e.get('msg', 'invalid')}")
    return "invalid request: " + "; ".join(parts)


def _install_error_handlers(app: FastAPI) -> None:
    async def medgym_error(request: Request, exc: Exception) -> Response:
        code = next(c for cls, c in _STATUS if isinstance(exc, cls))
        return _error(code, str(exc), type(exc).__name__)

    async def validation_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, RequestValidationError):
            raise TypeError(f"expected RequestValidationError; got {type(exc).__name__}")
        return _error(422, _describe_validation(exc), "ValidationError")

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, StarletteHTTPException):
            raise TypeError(f"expected HTTPException; got {type(exc).__name__}")
        headers = dict(exc.headers) if exc.headers else None
        return _error(exc.status_code, str(exc.detail), "HTTPError", headers)

    async def unexpected(request: Request, exc: Exception) -> Response:
        logger.exception("unexpected error on %s %s", request.method, request.url.path)
        return _error(500, "internal server error (logged on the server)", "InternalError")

    app.add_exception_handler(MedGymError, medgym_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)


def _make_store(settings: ServerSettings) -> ImageStore:
    if settings.store_dir is not None:
        return ImageStore(Path(settings.store_dir))
    return default_store()


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """Build the tool server.

    Args:
        settings: Limits, token and roots; read from ``MEDGYM_*`` environment variables if omitted.

    Returns:
        The app; run it with ``uvicorn`` (``medgym serve`` does).
    """
    settings = settings or ServerSettings()
    store = _make_store(settings)
    if settings.store_dir is not None:
        # store:// references resolve through the default store; point it at the shared folder.
        from medgym.data.store import set_default_store

        set_default_store(store)
    service = ToolService(settings, store)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        yield

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
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes)
    if settings.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(
            CORSMiddleware, allow_origins=settings.cors_origins, allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )  # fmt: skip
    token = settings.token.get_secret_value() if settings.token else None
    open_router = APIRouter(prefix="/v1", tags=["health"])
    api = APIRouter(
        prefix="/v1", dependencies=[Depends(make_token_check(token))], responses=_ERRORS
    )
    version = medgym.__version__

    @open_router.get("/health", response_model=Health)
    async def health() -> Health:
        """Liveness: the process answers."""
        return Health(status="ok", version=version)

    @open_router.get("/ready", response_model=Health, responses={503: {"model": Health}})
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

    @api.get("/tools")
    async def list_tools() -> list[dict[str, Any]]:
        """The flat OpenAI function schemas of every tool."""
        return TOOLS.schemas()

    @api.post(
        "/images",
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
        return await anyio.to_thread.run_sync(service.upload, data, filename)

    @api.post("/images/register", response_model=ImageDescription)
    def register_image(req: RegisterRequest) -> ImageDescription:
        """Describe an image the server can reach (a path under its data root, or a URI)."""
        return service.describe(req.ref)

    @api.post(
        "/tools/call",
        response_model=ToolCallResponse,
        responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}},
    )
    def call_tool(req: ToolCallRequest, request: Request) -> Response:
        """Run a tool on a view history; a tool error is a 422 with the model's message.

        With ``encoding`` set, the new view's pixels come inline (base64 in ``image``), or, when
        ``Accept`` names the encoding's media type, as the raw body with the JSON result in the
        ``X-Medgym-Result`` header and the shape in ``X-Medgym-Shape``.
        """
        result, pixels = service.call_tool(req)
        if pixels is not None and MEDIA_TYPES[req.encoding] in request.headers.get("accept", ""):
            data, media = encode_pixels(pixels, req.encoding)
            headers = {
                "X-Medgym-Result": json.dumps(result.model_dump(mode="json"), ensure_ascii=True),
                "X-Medgym-Shape": ",".join(str(n) for n in pixels.shape),
            }
            return Response(data, media_type=media, headers=headers)
        result.image = encoded_image(pixels, req.encoding)
        return _json(result)

    @api.post(
        "/render",
        response_class=Response,
        responses={200: {"content": {m: {} for m in MEDIA_TYPES.values()}}},
    )
    def render_view(req: RenderRequest) -> Response:
        """A view's pixels; ``X-Medgym-Shape`` gives ``height,width,3``."""
        pixels = service.render(req.images, req.view)
        data, media = encode_pixels(pixels, req.encoding)
        shape = ",".join(str(n) for n in pixels.shape)
        return Response(data, media_type=media, headers={"X-Medgym-Shape": shape})

    @api.post("/turn", response_model=TurnResponse)
    def apply_turn(req: TurnRequest) -> Response:
        """Apply a model turn as the episode session does (earlier turns replayed)."""
        return _json(service.apply_turn(req))

    app.include_router(open_router)
    app.include_router(api)
    return app
