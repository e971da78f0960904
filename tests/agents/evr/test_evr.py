from __future__ import annotations

import asyncio

import pytest

from medgym.agents import GroupRunner
from medgym.agents.entropy import TokenGeneration
from medgym.agents.evr import (
    EVRConfig,
    EVREngine,
    RolloutSignal,
    Threshold,
    TurnSignal,
    decision_mask,
    decision_spans,
    turn_signal,
    windowed,
)
from medgym.agents.scripted import answer_text, zoom_call
from medgym.data import load
from medgym.envs.session import EpisodeSession
from medgym.errors import ConfigError


def _sig(value: float) -> TurnSignal:
    return TurnSignal(value, value, value, 1)


class TracePolicy:
    """Zoom on turn 0, answer on turn 1; every token of a turn gets the scripted entropy.

    ``trace[k]`` is the entropy of every token of turn ``k``; ``hot`` answers are given by the
    branch policy (a different answer, to observe flips).
    """

    def __init__(
        self, trace: list[float], answer: str | None = None, side: float = 0.5, name: str = "trace"
    ) -> None:
        self.trace = trace
        self.answer = answer
        self.side = side
        self.name = name
        self.calls = 0

    async def generate(self, session: EpisodeSession) -> TokenGeneration:
        self.calls += 1
        k = int(session.metrics["turns"])
        if k == 0 and session.tools:
            img = session.images[0]
            text = zoom_call(session, 0, (0, 0, img.width * self.side, img.height * self.side))
        else:
            text = answer_text(self.answer or session.sample.answer or "yes")
        pieces = [text[i : i + 4] for i in range(0, len(text), 4)]
        h = self.trace[min(k, len(self.trace) - 1)]
        return TokenGeneration(text=text, entropies=[h] * len(pieces), pieces=pieces)


@pytest.fixture(scope="module")
def sample():
    return load("synthetic", num_samples=1, seed=3)[0]


def _factory(sample, k):
    return EpisodeSession(sample, trajectory_id=f"{sample.id}#{k}", group_id=sample.id)


# ---------------------------------------------------------------------- signal
def test_decision_spans_cover_box_and_answer() -> None:
    text = '<tool_call>{"name": "zoom_in", "arguments": {"bbox_2d": [1, 2, 3, 4]}}</tool_call>'
    ((a, b),) = decision_spans(text)
    assert text[a:b] == '"bbox_2d": [1, 2, 3, 4]'
    ((a, b),) = decision_spans("<think>hm</think><answer>left</answer>")
    assert "<think>hm</think><answer>left</answer>"[a:b] == "left"
    assert decision_spans("no decision here") == []


def test_decision_mask_marks_only_overlapping_pieces() -> None:
    text = "<think>x</think><answer>yes</answer>"
    pieces = ["<think>", "x", "</think>", "<answer>", "ye", "s", "</answer>"]
    assert decision_mask(text, pieces) == [False, False, False, False, True, True, False]


@pytest.mark.parametrize(
    ("values", "window", "stat", "expected"),
    [
        ([1, 1, 5, 1], 1, "mean", 5.0),
        ([1, 1, 5, 1], 2, "mean", 3.0),
        ([1, 1, 5, 1], 10, "mean", 2.0),
        ([1, 1, 5, 1], 2, "max", 5.0),
    ],
    ids=["window-1", "window-2", "window-longer-than-turn", "max"],
)
def test_windowed(values, window, stat, expected) -> None:
    assert windowed(values, window, stat) == pytest.approx(expected)


def test_turn_signal_counts_decision_tokens_and_gamma_uses_running_mean() -> None:
    cfg = EVRConfig(gamma=1.0, window=1, threshold_kind="absolute", threshold=1.0)
    rollout = RolloutSignal()
    text = "<think>x</think><answer>yes</answer>"
    pieces = ["<think>", "x", "</think>", "<answer>", "yes", "</answer>"]
    first = turn_signal(TokenGeneration(text, entropies=[9, 9, 9, 9, 2, 9], pieces=pieces), cfg,
                        rollout)  # fmt: skip
    assert first == TurnSignal(level=2.0, baseline=2.0, value=2.0, tokens=1)
    second = turn_signal(TokenGeneration(text, entropies=[0, 0, 0, 0, 5, 0], pieces=pieces), cfg,
                         rollout)  # fmt: skip
    assert second == TurnSignal(level=5.0, baseline=2.0, value=8.0, tokens=1)
    # no entropies: -logprob is used; nothing at all: no signal
    neg = turn_signal(TokenGeneration(text, logprobs=[-3.0]), cfg, RolloutSignal())
    assert neg is not None and neg.level == 3.0
    assert turn_signal(TokenGeneration(text), cfg, RolloutSignal()) is None


@pytest.mark.parametrize(
    ("bar", "values", "fires"),
    [
        (1.0, [0.5, 1.0, 1.0001, 3.0], [False, False, True, True]),
        (0.0, [0.0, 1e-9], [False, True]),
    ],
    ids=["strictly-above", "zero-bar"],
)
def test_absolute_threshold_fires_exactly_above(bar, values, fires) -> None:
    th = Threshold(EVRConfig(threshold_kind="absolute", threshold=bar))
    assert [th.fires(_sig(v)) for v in values] == fires
    assert th.fires(None) is False


def test_quantile_threshold_waits_for_warmup_then_uses_past_signals_only() -> None:
    th = Threshold(EVRConfig(threshold=0.5, warmup=4, history=4))
    assert [th.fires(_sig(v)) for v in (10, 20, 30, 40)] == [False] * 4  # warming up
    assert th.current() == pytest.approx(25.0)
    assert th.fires(_sig(25.0)) is False  # equal is not above
    assert th.fires(_sig(30.1)) is True  # bar of (20, 30, 40, 25) is 27.5
    assert th.current() == pytest.approx(30.05)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"mode": "fork"}, {"threshold": 1.5}, {"num_branches": 1}, {"leaf_budget": 0},
        {"initial_rollouts": 9, "leaf_budget": 8}, {"gamma": -1.0}, {"tokens": "some"},
    ],
    ids=["mode", "quantile>1", "one-branch", "no-budget", "roots>budget", "gamma<0", "tokens"],
)  # fmt: skip
def test_config_rejects_bad_values(kwargs) -> None:
    with pytest.raises(ConfigError):
        EVRConfig(**kwargs)


# ---------------------------------------------------------------------- branch mode
@pytest.mark.parametrize(
    ("trace", "fires_per_root", "leaves_per_root"),
    [([0.1, 0.1], 0, 1), ([5.0, 0.1], 1, 2), ([0.1, 5.0], 1, 2), ([5.0, 5.0], 3, 4)],
    ids=["never", "zoom-turn", "answer-turn", "both"],
)
def test_branch_fires_exactly_where_trace_crosses(
    sample, trace, fires_per_root, leaves_per_root
) -> None:
    cfg = EVRConfig(threshold_kind="absolute", threshold=1.0, gamma=0.0, leaf_budget=64,
                    initial_rollouts=1, num_branches=2)  # fmt: skip
    policy = TracePolicy(trace)
    engine = EVREngine(cfg, branch_policy=TracePolicy([0.0]))
    leaves = asyncio.run(engine.tree(sample, policy, _factory))
    # resampled turns (branch policy) never fire; a branch's later turns are the policy's again:
    # with both turns uncertain a root forks at its zoom, then it and its branch fork at the
    # answer (3 fires, 4 leaves)
    roots = [t for t in leaves if t.parent_id is None]
    assert len(leaves) == cfg.leaf_budget == len(roots) * leaves_per_root
    assert engine.stats.fires == engine.stats.branches == fires_per_root * len(roots)


def test_branch_tree_bookkeeping_and_budget(sample) -> None:
    cfg = EVRConfig(threshold_kind="absolute", threshold=1.0, gamma=0.0, leaf_budget=5,
                    initial_rollouts=2, num_branches=3)  # fmt: skip
    engine = EVREngine(cfg, branch_policy=TracePolicy([5.0], answer="zzz", side=0.25))
    leaves = asyncio.run(engine.tree(sample, TracePolicy([5.0, 5.0]), _factory))
    assert len(leaves) == 5  # budget, not more, though every turn fires
    ids = {s.trajectory_id for s in leaves}
    assert len(ids) == 5
    by_id = {s.trajectory_id: s for s in leaves}
    for leaf in leaves:
        assert leaf.done and leaf.terminated
        t = leaf.trajectory()
        assert t.reward is not None and t.answer is not None
        if leaf.parent_id is not None:
            parent = by_id[leaf.parent_id]
            # a branch shares its parent's turns before the branch point, and differs at it
            assert [x.action for x in leaf.turns[: leaf.branch_turn]] == [
                x.action for x in parent.turns[: leaf.branch_turn]
            ]
            assert leaf.turns[leaf.branch_turn].action != parent.turns[leaf.branch_turn].action
    assert engine.stats.branches == 3 and engine.stats.fires >= 3
    # all forks happened at the zoom turn and their answers came from the policy again
    assert engine.stats.compared == 3 and engine.stats.flipped == 0


def test_branch_at_answer_logs_flips_and_their_accuracy(sample) -> None:
    cfg = EVRConfig(threshold_kind="absolute", threshold=1.0, gamma=0.0, leaf_budget=4,
                    initial_rollouts=2, num_branches=2)  # fmt: skip
    engine = EVREngine(cfg, branch_policy=TracePolicy([0.0], answer="zzz"))
    leaves = asyncio.run(engine.tree(sample, TracePolicy([0.1, 5.0]), _factory))
    assert sorted(s.branch_turn or 0 for s in leaves) == [0, 0, 1, 1]
    assert engine.stats.compared == 2 and engine.stats.flipped == 2
    assert engine.stats.flipped_accuracy == 0.0
    assert {s.answer for s in leaves if s.parent_id} == {"zzz"}


def test_group_runner_branch_mode_groups_leaves_and_logs_fire_rate() -> None:
    samples = load("synthetic", num_samples=2, seed=4)
    cfg = EVRConfig(threshold_kind="absolute", threshold=1.0, leaf_budget=4, initial_rollouts=2)
    runner = GroupRunner(n=4, progress=False, evr=cfg, branch_policy=TracePolicy([0.0]))
    groups = runner.run(samples, TracePolicy([5.0, 0.0]))
    assert [len(g) for g in groups] == [4, 4]
    assert runner.stats.episodes == 8
    assert 0 < runner.stats.extra["evr/fire_rate"] <= 1
    assert any(t.parent_id for g in groups for t in g.trajectories)


# ---------------------------------------------------------------------- reground mode
@pytest.mark.parametrize(
    ("trace", "max_regrounds", "expected"),
    [([0.1, 0.1], 2, 0), ([0.1, 5.0], 1, 1), ([0.1, 5.0], 0, 0)],
    ids=["confident", "uncertain-answer", "k=0"],
)
def test_reground_injects_before_uncertain_answers(sample, trace, max_regrounds, expected) -> None:
    cfg = EVRConfig(mode="reground", threshold_kind="absolute", threshold=1.0, gamma=0.0,
                    max_regrounds=max_regrounds)  # fmt: skip
    engine = EVREngine(cfg)
    session = asyncio.run(engine.reground(TracePolicy(trace), _factory(sample, 0)))
    injected = [t for t in session.turns if t.injected]
    assert engine.stats.regrounds == expected
    assert len(injected) == 2 * expected  # the withheld answer and the instruction
    assert session.terminated
    if expected:
        assert injected[1].observation == cfg.reground_text
        assert "<answer>" in injected[0].action
        assert engine.stats.compared == 1 and engine.stats.flipped == 0  # same answer again


def test_reground_respects_k_per_episode(sample) -> None:
    cfg = EVRConfig(mode="reground", threshold_kind="absolute", threshold=1.0, gamma=0.0,
                    max_regrounds=1)  # fmt: skip
    engine = EVREngine(cfg)
    session = EpisodeSession(sample, trajectory_id="x")
    session = asyncio.run(engine.reground(TracePolicy([5.0, 5.0, 5.0, 5.0]), session))
    assert engine.stats.regrounds == 1 and session.terminated


def test_leaf_budget_waves_and_forks_never_exceed_the_leaves() -> None:
    from medgym.agents.evr import LeafBudget

    b = LeafBudget(5, initial_rollouts=2, num_branches=3)
    assert list(b.wave()) == [0, 1]
    assert list(b.fork()) == [2, 3]  # M - 1 = 2 forks per firing
    assert list(b.wave()) == [4] and b.left == 0
    assert list(b.fork()) == [] and list(b.wave()) == []


@pytest.mark.parametrize(
    "args", [(0, 1, 2), (4, 0, 2), (4, 2, 1)], ids=["no-leaves", "no-roots", "one-branch"]
)
def test_leaf_budget_rejects_impossible_trees(args: tuple[int, int, int]) -> None:
    from medgym.agents.evr import LeafBudget

    with pytest.raises(ConfigError, match="LeafBudget needs"):
        LeafBudget(args[0], initial_rollouts=args[1], num_branches=args[2])


class BatchTracePolicy(TracePolicy):
    """A TracePolicy with a batched call that records the size of every batch."""

    def __init__(self, trace: list[float]) -> None:
        super().__init__(trace)
        self.batches: list[int] = []

    async def generate_batch(self, sessions: list[EpisodeSession]) -> list[TokenGeneration]:
        self.batches.append(len(sessions))
        return [await self.generate(s) for s in sessions]


def test_in_process_tree_runs_the_shared_scheduler_with_batched_turns(sample, monkeypatch) -> None:
    """EVREngine.tree and verl's TQ worker grow trees with the same BranchTree; the tree's
    concurrent episodes still share one batched generation call per step."""
    from medgym.agents.evr import tree as tree_module

    started: list[int] = []
    real = tree_module.BranchTree.leaf

    async def spy(self, index, run_leaf):  # type: ignore[no-untyped-def]
        started.append(index)
        return await real(self, index, run_leaf)

    monkeypatch.setattr(tree_module.BranchTree, "leaf", spy)
    cfg = EVRConfig(mode="branch", threshold_kind="absolute", threshold=100.0, leaf_budget=4,
                    initial_rollouts=4)  # fmt: skip
    policy = BatchTracePolicy([0.0])
    leaves = asyncio.run(EVREngine(cfg).tree(sample, policy, _factory))
    assert sorted(started) == [0, 1, 2, 3] and len(leaves) == 4
    assert [s.trajectory_id for s in leaves] == [f"{sample.id}#{k}" for k in range(4)]
    assert policy.batches == [4, 4]  # two turns, each one call for the four roots


def test_batched_policy_hands_a_failure_to_every_waiting_episode(sample) -> None:
    from medgym.agents.evr.tree import BatchedPolicy

    class Broken:
        name = "broken"

        async def generate_batch(self, sessions):  # type: ignore[no-untyped-def]
            raise RuntimeError("server down")

    async def go() -> list[object]:
        batched = BatchedPolicy(Broken())  # type: ignore[arg-type]
        sessions = [_factory(sample, k) for k in range(3)]
        return await asyncio.gather(*(batched.generate(s) for s in sessions),
                                    return_exceptions=True)  # fmt: skip

    results = asyncio.run(go())
    assert all(isinstance(r, RuntimeError) and "server down" in str(r) for r in results)
