"""Policy spec strings: ``scripted:NAME``, ``hf:PATH``, ``openai:URL:MODEL``."""

from __future__ import annotations

from typing import Any

from medgym.agents.policy import Policy
from medgym.errors import ConfigError

__all__ = ["POLICY_KINDS", "make_policy", "policy_label"]

POLICY_KINDS = ("scripted", "hf", "openai")


def _split(spec: str) -> tuple[str, str]:
    kind, sep, rest = spec.partition(":")
    if not sep or kind not in POLICY_KINDS or not rest:
        raise ConfigError(
            f"policy spec must be scripted:NAME, hf:PATH or openai:URL:MODEL; got {spec!r}"
        )
    return kind, rest


def policy_label(spec: str) -> str:
    """The policy's display name: the scripted name, the model name, or the path's last part."""
    kind, rest = _split(spec)
    if kind == "scripted":
        return rest
    if kind == "openai":
        return rest.rsplit(":", 1)[-1]
    return rest.rstrip("/").rsplit("/", 1)[-1]


def make_policy(spec: str, **kwargs: Any) -> Policy:
    """Build a policy from its spec string.

    Args:
        spec: ``scripted:NAME`` (see :data:`medgym.agents.SCRIPTED_POLICIES`), ``hf:PATH`` (a
            local checkpoint, loaded with :meth:`medgym.agents.HFPolicy.from_pretrained`) or
            ``openai:URL:MODEL`` (an OpenAI-compatible endpoint, ``URL`` up to ``/v1``).
        **kwargs: Passed to the HF or OpenAI constructor (e.g. ``device``, ``concurrency``).

    Example:
        >>> make_policy("scripted:oracle").name
        'oracle'
    """
    kind, rest = _split(spec)
    if kind == "scripted":
        from medgym.agents.scripted import make_scripted_policy

        if kwargs:
            raise ConfigError(f"scripted policies take no options; got {sorted(kwargs)}")
        return make_scripted_policy(rest)
    if kind == "hf":
        from medgym.agents.hf_policy import HFPolicy

        return HFPolicy.from_pretrained(rest, name=policy_label(spec), **kwargs)
    url, sep, model = rest.rpartition(":")
    if not sep or not url or not model or url.endswith("/"):
        raise ConfigError(f"openai policy spec must be openai:URL:MODEL; got {spec!r}")
    from medgym.agents.openai_policy import OpenAIPolicy, OpenAIPolicyConfig

    return OpenAIPolicy(OpenAIPolicyConfig(model=model, base_url=url, **kwargs))
