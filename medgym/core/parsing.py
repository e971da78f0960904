"""Parse a model turn into tool calls and an answer, tolerating what models actually write.

Understands the Hermes/Qwen format ``<tool_call>{"name": ..., "arguments": {...}}</tool_call>``
(several per turn), ``<answer>...</answer>`` and ``<think>...</think>``. Repairs single quotes,
trailing commas, code fences inside the tag, unclosed tags, JSON-string arguments (OpenAI style)
and common box aliases. It never raises on model text: problems are listed in
:attr:`ParsedTurn.errors`, written for the model to read.
"""

from __future__ import annotations

import ast
import json
import re
import warnings
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BOX_ALIASES", "ParsedCall", "ParsedTurn", "parse_turn"]

MAX_CALL_CHARS = 8_000
"""Longest tool-call body parsed; longer ones are reported, not parsed (bounded work)."""

BOX_ALIASES = ("bbox_2d", "bbox", "box", "bbox_px", "box_2d", "bounding_box", "coordinates")

_TAG = re.compile(r"<(/?)(tool_call|answer|think)>", re.IGNORECASE)
_FENCE = re.compile(r"^\s*```[a-zA-Z]*\s*|\s*```\s*$")
_TRAILING_COMMA = re.compile(r",\s*([}\]])")


@dataclass(frozen=True)
class ParsedCall:
    """One tool call as parsed: ``name`` and ``arguments`` (box aliases folded to ``bbox_2d``)."""

    name: str
    arguments: dict[str, Any]
    raw: str


@dataclass
class ParsedTurn:
    """What a model turn asked for.

    Attributes:
        calls: Tool calls that parsed, in order.
        answer: Text of the last ``<answer>``, stripped; ``None`` when there is none.
        think: Reasoning inside ``<think>`` tags (kept, not acted on).
        errors: Messages for the model about what could not be parsed.
        unclosed: Tags left open before another tag began (a tag still open at the very end
            is accepted: servers strip stop strings such as ``</tool_call>``).
    """

    calls: list[ParsedCall] = field(default_factory=list)
    answer: str | None = None
    think: str = ""
    errors: list[str] = field(default_factory=list)
    unclosed: list[str] = field(default_factory=list)

    @property
    def well_formed(self) -> bool:
        """No parse errors, no unclosed tags, and something to act on."""
        return (
            not self.errors and not self.unclosed and (bool(self.calls) or self.answer is not None)
        )


def _blocks(text: str) -> tuple[list[tuple[str, str, bool]], list[str]]:
    """Split ``text`` into ``(tag, body, closed)`` blocks; text outside tags is dropped."""
    blocks: list[tuple[str, str, bool]] = []
    unclosed: list[str] = []
    pos = 0
    open_tag: str | None = None
    start = 0
    for m in _TAG.finditer(text):
        closing, tag = m.group(1) == "/", m.group(2).lower()
        if open_tag is None:
            if not closing:
                open_tag, start = tag, m.end()
        elif closing and tag == open_tag:
            blocks.append((open_tag, text[start : m.start()], True))
            open_tag = None
        elif not closing:
            # A new tag opens before the last one closed: treat the earlier one as closed here.
            blocks.append((open_tag, text[start : m.start()], False))
            unclosed.append(open_tag)
            open_tag, start = tag, m.end()
        pos = m.end()
    if open_tag is not None:
        # Open at the very end is normal: servers often strip the stop string `</tool_call>`.
        blocks.append((open_tag, text[start:], False))
    del pos
    return blocks, unclosed


def _loads_lenient(body: str) -> Any:
    """JSON, else JSON without trailing commas, else a Python literal (single quotes)."""
    body = _FENCE.sub("", body.strip()).strip()
    try:
        return json.loads(body)
    except json.JSONDecodeError:
        pass
    fixed = _TRAILING_COMMA.sub(r"\1", body)
    try:
        return json.loads(fixed)
    except json.JSONDecodeError:
        pass
    start = fixed.find("{")
    if start >= 0:  # one JSON object followed by stray text (an unclosed tag, a remark)
        try:
            return json.JSONDecoder().raw_decode(fixed, start)[0]
        except json.JSONDecodeError:
            pass
    pythonic = re.sub(r"\btrue\b", "True", fixed)
    pythonic = re.sub(r"\bfalse\b", "False", pythonic)
    pythonic = re.sub(r"\bnull\b", "None", pythonic)
    try:
        with warnings.catch_warnings():  # model text like `0700` warns; the error is enough
            warnings.simplefilter("ignore", SyntaxWarning)
            return ast.literal_eval(pythonic)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError) as e:
        raise ValueError("not readable as JSON") from e


def _normalise_call(obj: Any, raw: str) -> ParsedCall:
    if isinstance(obj, list) and len(obj) == 1:
        obj = obj[0]
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {type(obj).__name__}")
    if "function" in obj and isinstance(obj["function"], dict):  # OpenAI-style wrapper
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError('missing "name" (a string)')
    args = obj.get("arguments", obj.get("parameters", {}))
    if isinstance(args, str):
        args = _loads_lenient(args) if args.strip() else {}
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise ValueError(f'"arguments" must be a JSON object, got {type(args).__name__}')
    args = dict(args)
    if "bbox_2d" not in args:
        for alias in BOX_ALIASES[1:]:
            if alias in args:
                args["bbox_2d"] = args.pop(alias)
                break
    return ParsedCall(name=name.strip(), arguments=args, raw=raw)


def _snippet(text: str, n: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= n else text[: n - 3] + "..."


def parse_turn(text: str, *, max_calls: int = 4) -> ParsedTurn:
    """Parse one model turn. Never raises on model text.

    Args:
        text: The model's turn.
        max_calls: Tool calls past this many are reported as errors and not run.

    Example:
        >>> t = parse_turn('<tool_call>{"name": "zoom_in", "arguments": {"bbox": [1, 2, 3, 4]}}'
        ...                '</tool_call>')
        >>> t.calls[0].arguments
        {'bbox_2d': [1, 2, 3, 4]}
    """
    out = ParsedTurn()
    if not isinstance(text, str):
        out.errors.append(f"expected text, got {type(text).__name__}")
        return out
    blocks, out.unclosed = _blocks(text)
    answers: list[str] = []
    thinks: list[str] = []
    n_calls = 0
    for tag, body, _closed in blocks:
        if tag == "answer":
            answers.append(body.strip())
        elif tag == "think":
            thinks.append(body.strip())
        else:
            n_calls += 1
            if n_calls > max_calls:
                continue  # one error line for all of them, below
            if len(body) > MAX_CALL_CHARS:
                out.errors.append(
                    f"tool call #{n_calls} is {len(body)} characters long; at most "
                    f"{MAX_CALL_CHARS} are read"
                )
                continue
            try:
                out.calls.append(_normalise_call(_loads_lenient(body), body))
            except ValueError as e:
                out.errors.append(
                    f"tool call #{n_calls} is not valid JSON ({_snippet(str(e))}): "
                    f"{_snippet(body)!r}; expected "
                    '{"name": <tool name>, "arguments": {...}} inside <tool_call></tool_call>'
                )
    if n_calls > max_calls:
        extra = n_calls - max_calls
        out.errors.append(
            f"too many tool calls in one turn: at most {max_calls} are run; the other {extra} "
            f"(call #{max_calls + 1} on) {'was' if extra == 1 else 'were'} ignored"
        )
    if answers:
        out.answer = answers[-1]
    out.think = "\n".join(thinks)
    return out
