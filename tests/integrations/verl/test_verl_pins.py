"""Pins on the verl 0.9.1 methods medgym overrides or calls though they are private.

A verl upgrade that changes one of them fails here, naming it, instead of letting medgym's
override drift from what verl now does (a copied ``_handle_generating_state`` once dropped MoE
router replay and speculative-decoding counters that way). On a failure: read the new verl
source, adapt the medgym side named in the table, then update the pin.
"""

from __future__ import annotations

import hashlib
import importlib
import inspect

import pytest

pytest.importorskip("verl")

TOOL_LOOP = "verl.experimental.agent_loop.tool_agent_loop.ToolAgentLoop"
TQ_WORKER = "verl.trainer.ppo.v1.agent_loop_tq.AgentLoopWorkerTQ"
DATASET = "verl.utils.dataset.rl_dataset.RLHFDataset"

#: (verl class, method) -> (sha256 prefix of its source, the medgym code that depends on it)
PINS = {
    (TOOL_LOOP, "__init__"): ("3c7a2223f9c37ac0", "agent_loop.MedgymAgentLoop.__init__"),
    (TOOL_LOOP, "run"): ("4d3b05be93f3261c", "agent_loop.MedgymAgentLoop.run"),
    (TOOL_LOOP, "_handle_pending_state"): (
        "87d7a6091d944342", "agent_loop.MedgymAgentLoop._handle_pending_state"
    ),
    (TOOL_LOOP, "_handle_generating_state"): (
        "c5a8a2c76f069bae", "agent_loop.MedgymAgentLoop._handle_generating_state (calls it)"
    ),
    (TOOL_LOOP, "_handle_processing_tools_state"): (
        "6fb81493273afe9b", "agent_loop.MedgymAgentLoop._handle_processing_tools_state"
    ),
    (TOOL_LOOP, "ct_merge_context_msg"): ("c53f0db3904b00a8", "agent_loop._append_context"),
    (TOOL_LOOP, "ct_merge_assistant_token"): (
        "d8cbb98f7358747f", "agent_loop._handle_generating_state (logprob alignment)"
    ),
    (TOOL_LOOP, "_assert_mm_supported"): ("31d48a8f50816802", "agent_loop._append_context"),
    (TQ_WORKER, "_run_prompt"): ("3d9bca6b0ea5fe25", "tq_worker.GroupRewardMixin._run_prompt"),
    (TQ_WORKER, "_run_agent_loop"): (
        "32c3d607c5d4c9fa", "tq_worker.GroupRewardMixin._run_agent_loop"
    ),
    (TQ_WORKER, "_agent_loop_postprocess"): (
        "523edacbff73640d", "tq_worker.GroupRewardMixin._agent_loop_postprocess"
    ),
    (DATASET, "_process_multi_modal_info"): (
        "d7822468d2aaeb94", "dataset.MedgymRLHFDataset._process_multi_modal_info"
    ),
    (DATASET, "process_vision_info"): (
        "4497b69c0fac21d7", "dataset.MedgymRLHFDataset.process_vision_info"
    ),
}  # fmt: skip


def _verl_method(path: str, name: str) -> object:
    module, cls_name = path.rsplit(".", 1)
    cls = getattr(importlib.import_module(module), cls_name)
    cls = getattr(cls, "__ray_actor_class__", cls)  # @ray.remote classes wrap the plain one
    return getattr(cls, name)


@pytest.mark.parametrize(
    ("target", "pin"), list(PINS.items()), ids=[f"{c.rsplit('.', 1)[1]}.{m}" for c, m in PINS]
)
def test_overridden_verl_method_is_unchanged(target: tuple[str, str], pin: tuple[str, str]) -> None:
    cls, name = target
    digest = hashlib.sha256(inspect.getsource(_verl_method(cls, name)).encode()).hexdigest()[:16]
    expected, ours = pin
    assert digest == expected, (
        f"verl's {cls}.{name} changed (sha256 {digest}, pinned {expected}); medgym's "
        f"medgym/integrations/verl/{ours} depends on it: re-read it, adapt, then update the pin"
    )


def test_every_override_is_pinned() -> None:
    """A new override of a verl method must come with a pin."""
    from medgym.integrations.verl.agent_loop import MedgymAgentLoop
    from medgym.integrations.verl.dataset import MedgymRLHFDataset
    from medgym.integrations.verl.tq_worker import GroupRewardMixin

    for ours, path in ((MedgymAgentLoop, TOOL_LOOP), (GroupRewardMixin, TQ_WORKER),
                       (MedgymRLHFDataset, DATASET)):  # fmt: skip
        module, cls_name = path.rsplit(".", 1)
        theirs = getattr(importlib.import_module(module), cls_name)
        theirs = getattr(theirs, "__ray_actor_class__", theirs)
        names = {n for n in vars(ours) if not n.startswith("__") or n == "__init__"}
        overridden = {n for n in names if callable(getattr(theirs, n, None))}
        missing = {n for n in overridden if (path, n) not in PINS}
        assert not missing, f"{ours.__name__} overrides verl's {sorted(missing)} without a pin"
