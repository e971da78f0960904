"""Sample validation."""

from __future__ import annotations

import pytest


def test_more_options_than_letters_is_a_clear_error() -> None:
    """27 options crashed the prompt builder with IndexError (issue 18, D7)."""
    import pydantic

    from medgym.core.images import ImageRef
    from medgym.core.sample import Sample

    opts = tuple(f"option {i}" for i in range(27))
    with pytest.raises(pydantic.ValidationError, match="at most 26"):
        Sample(id="s", question="q", images=(ImageRef(uri="x.png"),), options=opts)
