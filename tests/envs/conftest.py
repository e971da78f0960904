from __future__ import annotations

import numpy as np
import pytest

from medgym.core.images import ImageRef, MedImage
from medgym.core.sample import Evidence, Sample


@pytest.fixture(scope="session")
def image() -> MedImage:
    """A 1024x768 16-bit image with a bright square at (600, 300)-(664, 364)."""
    rng = np.random.default_rng(0)
    a = rng.normal(1000, 20, size=(768, 1024)).astype(np.uint16)
    a[300:364, 600:664] = 3000
    return MedImage.from_array(a, modality="CT")


@pytest.fixture(scope="session")
def sample() -> Sample:
    return Sample(
        id="t-1",
        images=(ImageRef(uri="memory://t-1"),),
        question="Is there a bright square?",
        answer="yes",
        answer_type="closed",
        options=("yes", "no"),
        evidence=(Evidence(bbox_px=(600, 300, 664, 364)),),
    )
