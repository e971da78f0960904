"""What the endpoints do, free of FastAPI: resolve refs safely, run tools, render, apply turns.

Everything here is stateless: a call carries the image references and the view history (or the
earlier turns), so any worker answers any call. Tools run through the registry and turns through
:class:`~medgym.envs.session.EpisodeSession`; nothing here re-implements their rules.

The slow steps (decoding an image, rendering a view, PNG/WebP encoding) are separate methods so
the app can run them in a thread and the rest (checks and tool geometry: tens of microseconds,
less than the thread hop) on the event loop; :meth:`ToolService.loaded` and
:meth:`ToolService.cached_pixels` say, without doing any I/O, whether the slow steps are needed.
Pixels are kept and sent in the view's own channels (:func:`~medgym.core.view.render_native`).
"""

from __future__ import annotations

import base64
import functools
import io
import logging
import weakref
from collections.abc import Sequence

import numpy as np
from PIL import Image, UnidentifiedImageError

from medgym.core.images import ImageRef, MedImage
from medgym.core.lru import ByteLRU
from medgym.core.sample import Sample
from medgym.core.view import ViewSpec, render_native
from medgym.data.cache import image_cache
from medgym.data.store import ImageStore, store_payload
from medgym.envs.config import SessionConfig
from medgym.envs.profiles import ModelProfile, get_profile
from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError, DatasetError, MedGymError
from medgym.serving.encoding import encode_pixels
from medgym.serving.offload import Offload, check_pixels, decode_image
from medgym.serving.schemas import (
    EncodedImage,
    ImageDescription,
    ToolCallRequest,
    ToolCallResponse,
    TurnRequest,
    TurnResponse,
    TurnView,
)
from medgym.serving.settings import ServerSettings
from medgym.tools import TOOLS
from medgym.tools.base import ImageInfo, ToolConfig, ToolContext

__all__ = ["LARGE_RENDER_PIXELS", "AccessError", "ToolService", "encoded_image"]

logger = logging.getLogger(__name__)

_URI_SCHEMES = ("store", "synthetic", "synthetic3d", "pkg")
_SERVED_DATASETS = ("synthetic", "realworld")
_SUFFIXES = (".png", ".jpg", ".jpeg", ".dcm", ".nii", ".nii.gz", ".tif", ".tiff", ".bmp", ".webp")
#: A render of more output pixels than this (a 1,024 px square) is heavy work: the app runs it in
#: the heavy queue, and with an :class:`~medgym.serving.offload.Offload` in a worker process.
LARGE_RENDER_PIXELS = 1024 * 1024


class AccessError(MedGymError, PermissionError):
    """A request named something the server may not touch (a path outside its data root)."""


def encoded_image(pixels: np.ndarray | None, encoding: str) -> EncodedImage | None:
    """Pixels as an inline base64 :class:`EncodedImage` (``None`` for no pixels or ``none``)."""
    if pixels is None or encoding == "none":
        return None
    data, _ = encode_pixels(pixels, encoding)
    return EncodedImage.model_validate(
        {"encoding": encoding, "shape": pixels.shape, "data": base64.b64encode(data).decode()}
    )


@functools.lru_cache(maxsize=8)
def _served_samples(dataset: str, split: str | None) -> dict[str, Sample]:
    from medgym.data import load

    return {s.id: s for s in load(dataset, split=split)}


class ToolService:
    """The server's behaviour, bound to its settings and image store.

    Args:
        settings: Limits and roots.
        store: Where uploads go (shared on disk by every worker when ``store_dir`` is set).
        offload: Worker processes for decodes and renders over :data:`LARGE_RENDER_PIXELS`
            (``None``: the calling thread does them).
    """

    def __init__(
        self, settings: ServerSettings, store: ImageStore, offload: Offload | None = None
    ) -> None:
        self.settings = settings
        self.store = store
        self.offload = offload
        self.data_root = settings.data_root.resolve() if settings.data_root else None
        self._rendered: ByteLRU[tuple[ImageRef, ViewSpec], np.ndarray] = ByteLRU(
            max(1, settings.render_cache_size), settings.render_cache_bytes,
            nbytes=lambda a: int(a.nbytes),
        )  # fmt: skip
        # Refs already checked and decoded, to the image; weak, so the image cache
        # (medgym.data.cache) alone decides what stays in memory.
        self._checked: weakref.WeakValueDictionary[ImageRef, MedImage] = (
            weakref.WeakValueDictionary()
        )
        # each such image's key in the image cache, so a call served from _checked still
        # counts as a use there: an image in constant use is not the least recently used
        self._cache_keys: weakref.WeakKeyDictionary[MedImage, ImageRef] = (
            weakref.WeakKeyDictionary()
        )

    # ------------------------------------------------------------------ images
    def safe_ref(self, ref: ImageRef) -> ImageRef:
        """Check that ``ref`` is something this server may read; paths become absolute.

        Raises:
            AccessError: A path outside the data root, or a path with no data root configured.
            DatasetError: A URI scheme the server does not serve.
        """
        scheme, sep, rest = ref.uri.partition("://")
        if sep and scheme != "file":
            if scheme not in _URI_SCHEMES:
                raise DatasetError(
                    f"image URI scheme `{scheme}://` is not served; expected one of "
                    f"{', '.join(s + '://' for s in _URI_SCHEMES)} or a path under the data root"
                )
            if ".." in rest.split("/"):
                raise AccessError(f"image URI {ref.uri!r} contains '..'; refused")
            if scheme == "synthetic":
                self._check_synthetic(ref.uri)
            return ref
        raw = rest if sep else ref.uri
        if self.data_root is None:
            raise AccessError(
                f"image path {raw!r} refused: this server has no data root (MEDGYM_DATA_ROOT); "
                "upload the image instead"
            )
        if "\x00" in raw:
            raise AccessError("image path contains a NUL byte; refused")
        path = (self.data_root / raw).resolve()
        if not path.is_relative_to(self.data_root):
            raise AccessError(f"image path {raw!r} lies outside the data root; refused")
        return ref.model_copy(update={"uri": str(path)})

    def _check_synthetic(self, uri: str) -> None:
        from medgym.data.synthetic import SyntheticSpec

        side = SyntheticSpec.parse(uri).size
        if side * side > self.settings.max_pixels:
            raise DatasetError(
                f"{uri[:80]} asks for {side}x{side} pixels; this server accepts at most "
                f"{self.settings.max_pixels} (MEDGYM_MAX_PIXELS)"
            )

    def load(self, ref: ImageRef) -> MedImage:
        """Check ``ref`` and decode it through the shared LRU of decoded images.

        A miss decodes in a worker process when the service has an :class:`Offload`; either way
        an image over ``max_pixels`` is refused where it was decoded.
        """
        safe = self.safe_ref(ref)
        cache = image_cache()
        image = cache.peek(safe)
        if image is None:
            payload = store_payload(safe, self.store) if safe.uri.startswith("store://") else None
            image = self._decode(safe, payload)
            cache.put(safe, image)
        else:
            check_pixels(ref, image, self.settings.max_pixels)
        self._checked[ref] = image
        self._cache_keys[image] = safe
        return image

    def _decode(self, ref: ImageRef, payload: tuple[bytes, str] | None) -> MedImage:
        limit = self.settings.max_pixels
        if self.offload is None:
            return decode_image(ref, payload, limit)
        return self.offload.decode(ref, payload, max_pixels=limit)

    def load_all(self, refs: Sequence[ImageRef]) -> list[MedImage]:
        """:meth:`load` each reference."""
        return [self.load(r) for r in refs]

    def loaded(self, refs: Sequence[ImageRef]) -> list[MedImage] | None:
        """The images if every ref was checked and decoded before and is still in memory.

        No I/O, no decoding: ``None`` means "call :meth:`load_all` (in a thread)".
        """
        images = []
        for r in refs:
            image = self._checked.get(r)
            if image is None:
                return None
            images.append(image)
        cache = image_cache()
        for image in images:
            key = self._cache_keys.get(image)
            if key is not None:
                cache.peek(key)  # a use: now the most recent
        return images

    def describe(self, ref: ImageRef) -> ImageDescription:
        """Load ``ref`` and say what it is."""
        return _description(ref, self.load(ref))

    def upload(self, data: bytes, filename: str | None) -> ImageDescription:
        """Validate and store uploaded bytes; returns the ``store://`` reference.

        Raises:
            DatasetError: Not an image, truncated, or larger than the pixel limit.
        """
        self._check_raster_header(data)
        name = (filename or "").lower()
        suffix = next((s for s in sorted(_SUFFIXES, key=len, reverse=True) if name.endswith(s)), "")
        # decoded once, where the offload runs it, before anything is stored
        label = f"upload {filename}" if filename else f"upload{suffix}"
        image = self._decode(ImageRef(uri="upload"), (data, label))
        ref = self.store.put_bytes(data, suffix=suffix, validate=False)
        image_cache().put(ref, image)
        self._checked[ref] = image
        self._cache_keys[image] = ref
        return _description(ref, image)

    def _check_raster_header(self, data: bytes) -> None:
        """Refuse a raster whose header declares too many pixels, before anything decodes it."""
        limit = self.settings.max_pixels
        try:
            with Image.open(io.BytesIO(data)) as im:
                w, h = im.size
        except Image.DecompressionBombError as e:
            raise DatasetError(f"upload refused before decoding (too many pixels): {e}") from e
        except (UnidentifiedImageError, OSError, ValueError):
            return  # not a raster Pillow knows (DICOM, NIfTI) or broken: the reader decides
        if w * h > limit:
            raise DatasetError(
                f"upload declares {w}x{h} = {w * h} pixels; this server accepts at most {limit} "
                "(MEDGYM_MAX_PIXELS); refused before decoding"
            )

    # ------------------------------------------------------------------ tools
    def _profile(self, name: str, max_pixels: int | None) -> ModelProfile:
        return get_profile(name, **({"max_pixels": max_pixels} if max_pixels else {}))

    def run_tool(self, req: ToolCallRequest, images: Sequence[MedImage]) -> ToolCallResponse:
        """Run the tool on loaded images (geometry only: no pixels); ToolError propagates (422)."""
        try:
            tool_config = ToolConfig(**req.tool_config)  # type: ignore[arg-type]
        except TypeError as e:
            raise ConfigError(f"unknown tool_config field: {e}") from e
        for v in req.views:
            _check_view(v, images)
        ctx = ToolContext(
            views=tuple(req.views),
            images=tuple(ImageInfo.of(im) for im in images),
            sizer=self._profile(req.profile, req.max_pixels).view_size,
            config=tool_config,
        )
        tool = TOOLS.get(req.name)
        result = tool(ctx, req.arguments)
        return ToolCallResponse(
            name=tool.name, ok=result.ok, text=result.text, view=result.view,
            penalty=result.penalty, notes=list(result.notes),
        )  # fmt: skip

    def render(self, images: Sequence[ImageRef], view: ViewSpec) -> np.ndarray:
        """Pixels of ``view`` (LRU-cached, read-only; see :meth:`render_loaded`)."""
        decoded = self.load_all(images)
        _check_view(view, decoded)
        return self.render_loaded(images[view.image_index], decoded[view.image_index], view)

    def check_view(self, view: ViewSpec, images: Sequence[MedImage]) -> None:
        """Refuse a view of an image that is not there, or one too large to render."""
        _check_view(view, images)

    def cached_pixels(self, ref: ImageRef, view: ViewSpec) -> np.ndarray | None:
        """The view's pixels if the rendered-view LRU has them, else ``None`` (no rendering)."""
        if self.settings.render_cache_size == 0:
            return None
        return self._rendered.get(_render_key(ref, view))

    def render_loaded(self, ref: ImageRef, image: MedImage, view: ViewSpec) -> np.ndarray:
        """Render ``view`` of an already loaded image, through the rendered-view LRU.

        Returns:
            A read-only ``(height, width, 1)`` (grayscale image) or ``(height, width, 3)`` uint8
            array: :func:`~medgym.core.view.render_native`, a third of the memory for gray.
        """
        w, h = view.out_size
        if self.settings.render_cache_size == 0 or w * h > LARGE_RENDER_PIXELS:
            # large views are not kept: sixteen 4,096 px renders would flush every ordinary one
            return self._render(image, view)
        hit = self.cached_pixels(ref, view)
        if hit is not None:
            return hit
        pixels = self._render(image, view)
        self._rendered.put(_render_key(ref, view), pixels)
        return pixels

    def _render(self, image: MedImage, view: ViewSpec) -> np.ndarray:
        w, h = view.out_size
        if self.offload is not None and w * h > LARGE_RENDER_PIXELS:
            pixels = self.offload.render(image, view)
        else:
            pixels = render_native(image, view)
        pixels.setflags(write=False)
        return pixels

    # ------------------------------------------------------------------ turns
    def _sample(self, req: TurnRequest) -> Sample:
        if req.sample is not None:
            return req.sample
        if req.dataset is None or req.sample_id is None:
            raise ConfigError("give `sample`, or `dataset` and `sample_id`")
        if req.dataset not in _SERVED_DATASETS:
            raise ConfigError(
                f"dataset `{req.dataset}` is not served; served: {', '.join(_SERVED_DATASETS)}"
            )
        samples = _served_samples(req.dataset, req.split)
        if req.sample_id not in samples:
            raise ConfigError(f"no sample {req.sample_id!r} in {req.dataset}/{req.split}")
        return samples[req.sample_id]

    def apply_turn(self, req: TurnRequest) -> TurnResponse:
        """Rebuild the session from the earlier turns and apply the new one."""
        sample = self._sample(req)
        images = [self.load(r) for r in sample.images]
        try:
            config = SessionConfig.from_dict(req.config)
        except TypeError as e:
            raise ConfigError(f"unknown session config field: {e}") from e
        session = EpisodeSession(
            sample, config=config, profile=self._profile(req.profile, req.max_pixels),
            images=images,
        )  # fmt: skip
        for text in req.history:
            session.apply_turn(text)
        r = session.apply_turn(req.text)
        views = [
            TurnView(
                index=i,
                view=session.views[i],
                image=encoded_image(
                    self.render_loaded(
                        sample.images[session.views[i].image_index],
                        images[session.views[i].image_index],
                        session.views[i],
                    ),
                    req.encoding,
                ),
            )
            for i in r.new_views
        ]
        return TurnResponse(
            observation=r.observation, new_views=views, reward=r.reward,
            terminated=r.terminated, truncated=r.truncated, answer=session.answer,
            errors=list(r.info.get("errors", [])), penalty=float(r.info.get("penalty", 0.0)),
            metrics=dict(r.info.get("metrics", {})),
            reward_parts=dict(r.info.get("reward_parts", {})),
        )  # fmt: skip


def _description(ref: ImageRef, image: MedImage) -> ImageDescription:
    return ImageDescription(
        ref=ref, width=image.width, height=image.height, num_slices=image.num_slices,
        channels=3 if image.is_color else 1, modality=image.modality,
        default_window=image.default_window, spacing_mm=image.spacing_mm,
        slice_spacing_mm=image.slice_spacing_mm, plane=ImageInfo.of(image).acquired_plane,
    )  # fmt: skip


def _render_key(ref: ImageRef, view: ViewSpec) -> tuple[ImageRef, ViewSpec]:
    # Both are frozen pydantic models: hashed and compared by value (0.5 us; JSON was 2 us).
    return (ref, view)


def _check_view(view: ViewSpec, images: Sequence[MedImage]) -> None:
    if view.image_index >= len(images):
        raise ConfigError(
            f"view image_index {view.image_index} is out of range; {len(images)} image(s) given"
        )
    w, h = view.out_size
    if w * h > 16_777_216:
        raise ConfigError(f"view out_size {view.out_size} exceeds 16 M pixels")
