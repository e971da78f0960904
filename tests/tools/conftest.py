from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from medgym.core.images import MedImage, Window
from medgym.core.view import ViewSpec, full_view
from medgym.tools import ImageInfo, ToolConfig, ToolContext

CtxFactory = Callable[..., ToolContext]


def ct_array(width: int = 896, height: int = 672) -> np.ndarray:
    """int16 HU gradient: -1000 at the left edge to +1000 at the right, rows add a little."""
    ys, xs = np.mgrid[0:height, 0:width]
    return (xs * 2000 // (width - 1) - 1000 + ys // 8).astype(np.int16)


@pytest.fixture
def ct_image() -> MedImage:
    return MedImage.from_array(
        ct_array(), default_window=Window(level=40, width=400), modality="CT"
    )


@pytest.fixture
def make_ctx() -> CtxFactory:
    """``make_ctx(image_or_info, views=None, **config)``: a context whose view 0 is the full image
    at 448 px on its long side (as a session shows it first)."""

    def make(
        image: MedImage | ImageInfo,
        views: tuple[ViewSpec, ...] | None = None,
        **config: float,
    ) -> ToolContext:
        info = image if isinstance(image, ImageInfo) else ImageInfo.of(image)
        if views is None:
            scale = 448 / max(info.width, info.height)
            size = (round(info.width * scale), round(info.height * scale))
            views = (
                ViewSpec(bbox_px=(0, 0, info.width, info.height), out_size=size)
                if isinstance(image, ImageInfo)
                else full_view(image, size),
            )
        return ToolContext(views=views, images=(info,), config=ToolConfig(**config))

    return make
