from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from medgym.core.parsing import MAX_CALL_CHARS, parse_turn

CALL = '{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 30, 40]}}'


@pytest.mark.parametrize(
    ("text", "name", "args"),
    [
        (f"<tool_call>{CALL}</tool_call>", "zoom_in", {"bbox_2d": [1, 2, 30, 40]}),
        (f"<tool_call>\n```json\n{CALL}\n```\n</tool_call>", "zoom_in", {"bbox_2d": [1, 2, 30, 40]}),
        ("<tool_call>{'name': 'zoom_in', 'arguments': {'bbox_2d': [1, 2, 3, 4]}}</tool_call>",
         "zoom_in", {"bbox_2d": [1, 2, 3, 4]}),
        ('<tool_call>{"name": "crop", "arguments": {"bbox": [1, 2, 3, 4],},}</tool_call>',
         "crop", {"bbox_2d": [1, 2, 3, 4]}),
        (f"<tool_call>{CALL}", "zoom_in", {"bbox_2d": [1, 2, 30, 40]}),
        ('<tool_call>{"name": "zoom_in", "arguments": "{\\"box\\": [1, 2, 3, 4]}"}</tool_call>',
         "zoom_in", {"bbox_2d": [1, 2, 3, 4]}),
        ('<tool_call>{"function": {"name": "flip", "parameters": {"axis": "horizontal"}}}'
         "</tool_call>", "flip", {"axis": "horizontal"}),
        ('<TOOL_CALL>{"name": "reground", "arguments": null}</TOOL_CALL>', "reground", {}),
        ('<tool_call>{"name": "zoom_in", "arguments": {"label": "ünïcødé 肺"}}</tool_call>',
         "zoom_in", {"label": "ünïcødé 肺"}),
    ],
    ids=["plain", "code-fence", "single-quotes", "trailing-commas", "unclosed-at-end",
         "json-string-args", "openai-wrapper", "upper-case-null-args", "unicode"],
)  # fmt: skip
def test_tool_call_variants(text: str, name: str, args: dict) -> None:
    t = parse_turn("Let me look. " + text + " trailing text")
    assert not t.errors
    assert [c.name for c in t.calls] == [name]
    assert t.calls[0].arguments == args


def test_answer_think_and_multiple_calls() -> None:
    t = parse_turn(f"<think>hmm</think><tool_call>{CALL}</tool_call><tool_call>{CALL}</tool_call>")
    assert len(t.calls) == 2 and t.think == "hmm" and t.answer is None and t.well_formed
    t = parse_turn("<answer>first</answer> then <answer> Left lung </answer>")
    assert t.answer == "Left lung" and t.well_formed


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("<tool_call>{not json at all</tool_call>", "not valid JSON"),
        ('<tool_call>{"arguments": {}}</tool_call>', 'missing "name"'),
        (
            '<tool_call>{"name": "zoom_in", "arguments": [1, 2]}</tool_call>',
            "must be a JSON object",
        ),
        ("<tool_call>[1, 2, 3]</tool_call>", "expected a JSON object"),
        ("<tool_call>" + "x" * (MAX_CALL_CHARS + 1) + "</tool_call>", "characters long"),
    ],
    ids=["bad-json", "no-name", "args-not-object", "not-object", "huge"],
)
def test_bad_calls_become_errors(text: str, fragment: str) -> None:
    t = parse_turn(text)
    assert not t.calls
    assert any(fragment in e for e in t.errors), t.errors
    assert not t.well_formed


def test_call_limit() -> None:
    t = parse_turn(f"<tool_call>{CALL}</tool_call>" * 5, max_calls=2)
    assert len(t.calls) == 2
    # one line for the whole overflow, however long (issue 18, D9)
    assert [e for e in t.errors if "too many tool calls" in e] == [
        "too many tool calls in one turn: at most 2 are run; the other 3 (call #3 on) were ignored"
    ]


def test_tag_opened_inside_another_is_reported() -> None:
    t = parse_turn(f"<answer>yes <tool_call>{CALL}</tool_call>")
    assert t.unclosed == ["answer"] and t.answer == "yes" and len(t.calls) == 1


def test_neither_is_empty_but_not_error() -> None:
    t = parse_turn("I think it is a nodule.")
    assert not t.calls and t.answer is None and not t.errors and not t.well_formed


@given(st.text(max_size=2000))
def test_any_string_never_raises(text: str) -> None:
    t = parse_turn(text)
    assert isinstance(t.errors, list)


@given(
    st.lists(
        st.sampled_from(["<tool_call>", "</tool_call>", "<answer>", "</answer>", "<think>",
                         "{", "}", '"name"', ":", '"zoom_in"', ",", "[", "]", "'", "1e999", "x"]),
        max_size=60,
    )
)  # fmt: skip
def test_tag_soup_never_raises(tokens: list[str]) -> None:
    parse_turn("".join(tokens))


def test_non_string_input() -> None:
    t = parse_turn(None)  # type: ignore[arg-type]
    assert t.errors and not t.calls


def test_pythonic_fallback_does_not_warn_on_model_text() -> None:
    """Model text like `330in` made ast emit a SyntaxWarning per turn into the terminal."""
    import warnings

    from medgym.core.parsing import parse_turn

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        parsed = parse_turn(
            '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [330in, 1, 2, 3]}}</tool_call>'
        )
    assert parsed.errors and not parsed.calls
    assert not [w for w in caught if issubclass(w.category, SyntaxWarning)]
