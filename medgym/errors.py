"""The medgym error tree.

Two channels (see STYLE.md): programmer and configuration errors raise one of these; errors made
by a *model* (a malformed tool call, a box outside the image) are turned by the episode session
into an error observation plus a penalty, and never escape it.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

__all__ = [
    "ActionParseError",
    "ConfigError",
    "DatasetError",
    "DependencyNotInstalled",
    "InvalidBBoxError",
    "MedGymError",
    "ToolError",
    "did_you_mean",
]


class MedGymError(Exception):
    """Base class of every error medgym raises on purpose."""


class ConfigError(MedGymError, ValueError):
    """A configuration value or constructor argument is invalid."""


class DatasetError(MedGymError, ValueError):
    """A dataset file, record or image cannot be read; the message names file, record and field."""


class ToolError(MedGymError, ValueError):
    """A tool was called with arguments it cannot act on.

    The message is written for the *model*: it says what was expected and what arrived, so the
    session can show it verbatim as an error observation.
    """


class InvalidBBoxError(ToolError):
    """A bounding box is malformed, degenerate or lies outside the image."""


class ActionParseError(MedGymError, ValueError):
    """A model turn could not be parsed into tool calls or an answer."""


class DependencyNotInstalled(MedGymError, ImportError):
    """An optional dependency is missing; the message names the extra to install."""

    @classmethod
    def for_extra(cls, package: str, extra: str) -> DependencyNotInstalled:
        """Build the error for ``package`` shipped in the ``extra`` of medgym."""
        return cls(f"{package} is not installed; install it with `pip install 'medgym[{extra}]'`")


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``"; did you mean `x`?"`` for the closest choice, or ``""`` when none is close."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.5)
    return f"; did you mean `{close[0]}`?" if close else ""
