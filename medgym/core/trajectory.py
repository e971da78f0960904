"""Episode records: turns, trajectories and groups (n rollouts of one sample), with JSONL I/O."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from medgym.core.images import Reformat
from medgym.core.sample import Sample
from medgym.core.view import ViewSpec

__all__ = [
    "Group",
    "ToolCallRecord",
    "Trajectory",
    "Turn",
    "read_groups",
    "write_groups",
]


class ToolCallRecord(BaseModel):
    """One tool call the model made, and what came of it."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(description="Tool name as the model wrote it.")
    arguments: dict[str, Any] = Field(default_factory=dict, description="Arguments as parsed.")
    ok: bool = Field(description="Whether the tool ran and produced its result.")
    text: str = Field(default="", description="The text the model was shown for this call.")
    view_index: int | None = Field(default=None, description="Index of the view it produced.")
    bbox_px: tuple[float, float, float, float] | None = Field(
        default=None, description="Region the call looked at, in original pixels (if any)."
    )
    image_index: int | None = Field(default=None, description="Sample image the region is in.")
    slice_index: int | None = Field(
        default=None, description="Slice of a volume the region is on (None: 2D, or the middle)."
    )
    reformat: Reformat | None = Field(
        default=None,
        description="Plane of a volume the region is in: None, the acquired slices; coronal or "
        "sagittal, a reformat (bbox_px then spans (column or row, slice) voxels).",
    )
    penalty: float = Field(default=0.0, description="Penalty charged for this call (>= 0).")
    error: str | None = Field(default=None, description="Error class name when not ok.")


class Turn(BaseModel):
    """One model turn and the environment's reply to it."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=0, description="0-based turn number.")
    action: str = Field(description="The model's text for this turn.")
    observation: str = Field(default="", description="Text the environment replied with.")
    role: Literal["tool", "user"] = Field(default="tool", description="Role of the reply.")
    new_views: list[int] = Field(default_factory=list, description="Views shown in the reply.")
    tool_calls: list[ToolCallRecord] = Field(default_factory=list)
    answer: str | None = Field(default=None, description="Answer given in this turn, if any.")
    errors: list[str] = Field(default_factory=list, description="Model errors in this turn.")
    penalty: float = Field(default=0.0, description="Sum of penalties charged this turn.")
    injected: bool = Field(default=False, description="Text was injected (EVR), not generated.")
    token_ids: list[int] | None = Field(default=None, description="Generated token ids.")
    token_logprobs: list[float] | None = Field(default=None, description="Per-token log-probs.")
    token_entropies: list[float] | None = Field(default=None, description="Per-token entropies.")


class Trajectory(BaseModel):
    """One episode of one sample: every turn, every view, the answer and the reward parts."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Unique trajectory id.")
    sample_id: str = Field(description="Id of the sample this episode answered.")
    group_id: str | None = Field(default=None, description="Group (GRPO uid) it belongs to.")
    parent_id: str | None = Field(default=None, description="Trajectory it was forked from.")
    branch_turn: int | None = Field(default=None, description="Turn at which it was forked.")
    policy: str | None = Field(default=None, description="Name of the policy that acted.")
    system_prompt: str = Field(default="", description="System prompt, tools rendered in.")
    prompt: str = Field(default="", description="First user message (question and options).")
    turns: list[Turn] = Field(default_factory=list)
    views: list[ViewSpec] = Field(default_factory=list, description="All views, first = input.")
    answer: str | None = Field(default=None, description="Final answer, None if none given.")
    terminated: bool = Field(default=False, description="An answer was given.")
    truncated: bool = Field(default=False, description="A budget ran out before an answer.")
    reward: float | None = Field(default=None, description="Total reward, once scored.")
    reward_parts: dict[str, float] = Field(default_factory=dict, description="Reward by part.")
    metrics: dict[str, float] = Field(default_factory=dict, description="Counters and timings.")
    meta: dict[str, Any] = Field(default_factory=dict)

    @property
    def tool_calls(self) -> list[ToolCallRecord]:
        """Every tool call of the episode, in order."""
        return [c for t in self.turns for c in t.tool_calls]

    @property
    def executed_regions(self) -> list[tuple[int, tuple[float, float, float, float]]]:
        """``(image_index, bbox_px)`` of every call that ran and looked at a region."""
        return [
            (c.image_index or 0, c.bbox_px)
            for c in self.tool_calls
            if c.ok and c.bbox_px is not None
        ]


class Group(BaseModel):
    """The n trajectories of one sample (a GRPO group)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(description="Group id (verl's uid).")
    sample: Sample
    trajectories: list[Trajectory] = Field(default_factory=list)

    def __len__(self) -> int:
        return len(self.trajectories)

    @property
    def answers(self) -> list[str | None]:
        """Final answers, one per trajectory."""
        return [t.answer for t in self.trajectories]


def write_groups(groups: Iterable[Group], path: str | Path) -> int:
    """Write groups as JSONL, one group per line; returns the number written."""
    n = 0
    with Path(path).open("w", encoding="utf-8") as f:
        for g in groups:
            f.write(g.model_dump_json())
            f.write("\n")
            n += 1
    return n


def read_groups(path: str | Path) -> Iterator[Group]:
    """Read groups written by :func:`write_groups`.

    Raises:
        medgym.errors.DatasetError: Naming the file and line of a record that does not parse.
    """
    from pydantic import ValidationError

    from medgym.errors import DatasetError

    with Path(path).open(encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                yield Group.model_validate(json.loads(line))
            except (json.JSONDecodeError, ValidationError) as e:
                raise DatasetError(f"{path}:{lineno}: not a valid Group record: {e}") from e
