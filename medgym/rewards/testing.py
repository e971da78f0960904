"""Build small :class:`Group`s by hand: for tests, doctests and benchmarks of group rewards."""

from __future__ import annotations

from collections.abc import Sequence

from medgym.core.bbox import BBox
from medgym.core.images import ImageRef
from medgym.core.sample import Sample
from medgym.core.trajectory import Group, ToolCallRecord, Trajectory, Turn
from medgym.core.view import ViewSpec
from medgym.errors import ConfigError

__all__ = ["make_group", "make_trajectory"]

Region = tuple[int, BBox]


def make_trajectory(
    answer: object,
    regions: Sequence[Region] = (),
    *,
    index: int = 0,
    sample_id: str = "s",
    image_sizes: Sequence[tuple[int, int]] = ((512, 512),),
    final_text: str | None = None,
    failed_calls: int = 0,
) -> Trajectory:
    """One trajectory that zoomed on ``regions`` (``(image_index, bbox_px)``) and answered.

    Args:
        answer: The final answer (``None`` for none).
        regions: Executed zoom calls, each returning an image.
        index: Rollout number (used in the id).
        sample_id: Id of the sample.
        image_sizes: ``(width, height)`` of each sample image (gives the first views).
        final_text: Text of the answer turn; default ``<think>..</think><answer>..</answer>``.
        failed_calls: Extra tool calls that did not run (they must not count).
    """
    views = [
        ViewSpec(image_index=k, bbox_px=(0.0, 0.0, float(w), float(h)), out_size=(w, h))
        for k, (w, h) in enumerate(image_sizes)
    ]
    calls = []
    for k, box in regions:
        if not 0 <= k < len(image_sizes):
            raise ConfigError(f"region on image {k}, but there are {len(image_sizes)} images")
        views.append(ViewSpec(image_index=k, bbox_px=box, out_size=(64, 64), tool="zoom_in"))
        calls.append(
            ToolCallRecord(
                name="zoom_in", ok=True, view_index=len(views) - 1, bbox_px=box, image_index=k
            )
        )
    calls += [
        ToolCallRecord(name="zoom_in", ok=False, error="InvalidBBoxError", penalty=0.1)
        for _ in range(failed_calls)
    ]
    text_answer = answer if isinstance(answer, str) else None
    turns = [Turn(index=0, action="<tool_call>...</tool_call>", tool_calls=calls)] if calls else []
    if final_text is None:
        final_text = f"<think>look</think><answer>{text_answer or ''}</answer>"
    turns.append(Turn(index=len(turns), action=final_text, answer=text_answer))
    return Trajectory(
        id=f"{sample_id}#{index}",
        sample_id=sample_id,
        group_id=sample_id,
        turns=turns,
        views=views,
        answer=text_answer,
        terminated=text_answer is not None,
    )


def make_group(
    answers: Sequence[object],
    regions: Sequence[Sequence[Region]] | None = None,
    *,
    label: str | None = None,
    options: Sequence[str] = (),
    answer_type: str = "open",
    image_sizes: Sequence[tuple[int, int]] = ((512, 512),),
    modality: str | None = None,
    sample_id: str = "s",
) -> Group:
    """A group with one trajectory per answer; ``regions[i]`` are rollout i's zooms.

    Example:
        >>> g = make_group(["yes", "no"], [[(0, (0, 0, 10, 10))], []], label="yes")
        >>> len(g), g.trajectories[0].executed_regions
        (2, [(0, (0.0, 0.0, 10.0, 10.0))])
    """
    if regions is not None and len(regions) != len(answers):
        raise ConfigError(f"got {len(regions)} region lists for {len(answers)} answers")
    sample = Sample(
        id=sample_id,
        images=tuple(ImageRef(uri=f"synthetic://test/{k}") for k in range(len(image_sizes))),
        question="What is shown?",
        answer=label,
        answer_type=answer_type,  # type: ignore[arg-type]
        options=tuple(options),
        modality=modality,
    )
    trajs = [
        make_trajectory(
            a,
            regions[i] if regions is not None else (),
            index=i,
            sample_id=sample_id,
            image_sizes=image_sizes,
        )
        for i, a in enumerate(answers)
    ]
    return Group(id=sample_id, sample=sample, trajectories=trajs)
