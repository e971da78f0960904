"""Stand-ins for verl's LLM server and TransferQueue, for CPU dry runs and tests (no GPU, no Ray).

:class:`ScriptedServer` replays fixed texts; :class:`ModelServer` samples from a local
transformers model (the tiny offline Qwen2.5-VL in ``run_verl.py --dry-run``).
:func:`offline_tq_worker` builds the medgym TQ worker around them, with verl's own
``_run_prompt`` and ``_agent_loop_postprocess``, and TransferQueue replaced by
:class:`InMemoryTQ`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from types import SimpleNamespace
from typing import Any

from verl.workers.rollout.replica import TokenOutput

__all__ = [
    "InMemoryTQ",
    "ModelServer",
    "ScriptedServer",
    "agent_loop_kwargs",
    "minimal_trainer_config",
    "offline_tq_worker",
    "row_kwargs",
]


def minimal_trainer_config(response_length: int = 4096, **extra: Any) -> Any:
    """The parts of verl's trainer config that agent loops and the TQ worker read (OmegaConf).

    Args:
        response_length: ``rollout.response_length``.
        **extra: Top-level sections merged on top (``medgym={...}``, ``data={...}``).
    """
    from omegaconf import OmegaConf

    multi_turn = {
        "max_user_turns": 8, "max_assistant_turns": 8, "max_parallel_calls": 3,
        "max_tool_response_length": 512, "tool_response_truncate_side": "middle",
        "format": "hermes",
    }  # fmt: skip
    rollout = {
        "multi_turn": multi_turn, "prompt_length": 4096, "response_length": response_length,
        "full_determinism": False, "calculate_log_probs": True, "n": 4, "val_kwargs": {"n": 2},
    }  # fmt: skip
    return OmegaConf.merge(
        OmegaConf.create({"actor_rollout_ref": {"rollout": rollout}, "data": {}}),
        OmegaConf.create(extra),
    )


def agent_loop_kwargs(config: Any, processor: Any) -> dict[str, Any]:
    """What verl's worker passes every agent loop it builds (less the server and the tools)."""
    from verl.experimental.agent_loop.agent_loop import DictConfigWrap

    from medgym.integrations.verl.dataset import MedgymRLHFDataset

    return {
        "trainer_config": DictConfigWrap(config),
        "tokenizer": processor.tokenizer,
        "processor": processor,
        "dataset_cls": MedgymRLHFDataset,
        "data_config": DictConfigWrap(config.data),
        "hf_model_type": "qwen2_5_vl",
    }


def row_kwargs(sample: Any, *, data_source: str = "synthetic") -> dict[str, Any]:
    """What verl's worker passes ``agent_loop.run`` for ``sample``'s parquet row.

    The prompt's image is decoded from the row's PNG bytes, as verl's dataset does.
    """
    import io

    from PIL import Image

    from medgym.integrations.verl.prepare import sample_to_row

    row = sample_to_row(sample, 0, data_source=data_source)
    image = Image.open(io.BytesIO(row["images"][0]["bytes"])).convert("RGB")
    user = row["prompt"][1]["content"].replace("<image>", "")
    content = [{"type": "image", "image": image}, {"type": "text", "text": user}]
    return {
        "raw_prompt": [row["prompt"][0], {"role": "user", "content": content}],
        "extra_info": row["extra_info"],
        "tools_kwargs": row["extra_info"]["tools_kwargs"],
    }


class ScriptedServer:
    """Answers ``generate`` with the next scripted text (the last one repeats); records calls.

    Args:
        tokenizer: Tokenizer that encodes the texts.
        texts: The turns to return, in order, or a function of the call (its prompt ids and
            sampling params) returning the text, for servers shared by several episodes.
        logprob: Log-probability given to every token: a constant, one value per scripted
            turn, or a function of the text; ``None`` returns no log-probabilities.
        outputs: Other ``TokenOutput`` fields per turn (``extra_fields``, ``num_preempted``,
            ``routed_experts``), as vLLM and SGLang servers return them; the last one repeats.
    """

    def __init__(
        self,
        tokenizer: Any,
        texts: Sequence[str] | Any,
        logprob: float | Sequence[float] | Any | None = -0.5,
        outputs: Sequence[Mapping[str, Any]] = (),
    ) -> None:
        self.tokenizer = tokenizer
        self.texts = texts if callable(texts) else list(texts)
        self.logprob = logprob
        self.outputs = [dict(o) for o in outputs]
        self.calls: list[dict[str, Any]] = []

    def _logprob(self, k: int, text: str) -> float | None:
        if self.logprob is None or isinstance(self.logprob, (int, float)):
            return self.logprob
        if callable(self.logprob):
            return float(self.logprob(text))
        return float(self.logprob[min(k, len(self.logprob) - 1)])

    async def generate(
        self,
        *,
        request_id: str,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: list[Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """The next scripted turn as token ids, with a constant log-probability per token."""
        call = {
            "request_id": request_id,
            "prompt_ids": list(prompt_ids),
            "images": list(image_data or []),
            "sampling_params": dict(sampling_params),
        }
        self.calls.append(call)
        k = len(self.calls) - 1
        text = self.texts(call) if callable(self.texts) else self.texts[min(k, len(self.texts) - 1)]
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        lp = self._logprob(k, text)
        logps = None if lp is None else [lp] * len(ids)
        more = self.outputs[min(k, len(self.outputs) - 1)] if self.outputs else {}
        return TokenOutput(token_ids=ids, log_probs=logps, stop_reason="completed", **more)


class ModelServer:
    """Samples turns from a local image-text model (CPU), like vLLM with ``logprobs=0``.

    Args:
        model: A transformers image-text model in eval mode.
        processor: Its processor (builds pixel inputs for the prompt's images).
        max_new_tokens: Tokens per turn.
    """

    def __init__(self, model: Any, processor: Any, *, max_new_tokens: int = 32) -> None:
        self.model = model
        self.processor = processor
        self.max_new_tokens = max_new_tokens
        self.calls = 0

    async def generate(
        self,
        *,
        request_id: str,
        prompt_ids: list[int],
        sampling_params: dict[str, Any],
        image_data: list[Any] | None = None,
        **kwargs: Any,
    ) -> TokenOutput:
        """Sample one turn; returns the sampled tokens and their log-probabilities."""
        import anyio

        self.calls += 1
        temperature = float(sampling_params.get("temperature", 1.0))
        return await anyio.to_thread.run_sync(
            lambda: self._sample(prompt_ids, image_data, temperature)
        )

    def _sample(
        self, prompt_ids: list[int], images: list[Any] | None, temperature: float
    ) -> TokenOutput:
        import torch

        inputs: dict[str, Any] = {"input_ids": torch.tensor([prompt_ids])}
        if images:
            pix = self.processor.image_processor(images=images, return_tensors="pt")
            inputs.update(pixel_values=pix["pixel_values"], image_grid_thw=pix["image_grid_thw"])
            # Qwen2.5-VL computes its 3D (M-RoPE) positions only when told which tokens are
            # image tokens; without this the image would get 1D positions, as vLLM never does.
            image_id = self.model.config.image_token_id
            inputs["mm_token_type_ids"] = (inputs["input_ids"] == image_id).int()
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        with torch.no_grad():
            out = self.model.generate(
                **inputs,
                max_new_tokens=self.max_new_tokens,
                do_sample=temperature > 0,
                temperature=temperature if temperature > 0 else None,
                output_scores=True,
                return_dict_in_generate=True,
            )
        new = out.sequences[0, len(prompt_ids) :].tolist()
        # the sampled tokens' log-probabilities under the (temperature-scaled) sampling scores
        logps = [
            float(torch.log_softmax(s[0].float(), -1)[t])
            for s, t in zip(out.scores, new, strict=False)
        ]
        return TokenOutput(token_ids=new, log_probs=logps, stop_reason="completed")


class InMemoryTQ:
    """Records what verl's TQ worker puts into TransferQueue (``async_kv_put``/``_batch_put``)."""

    def __init__(self) -> None:
        self.status: dict[str, list[str]] = {}
        self.rows: dict[str, dict[str, Any]] = {}

    async def async_kv_put(self, key: str, partition_id: str, tag: dict[str, Any]) -> None:
        """A uid's status tag."""
        self.status.setdefault(key, []).append(str(tag.get("status")))

    async def async_kv_batch_put(
        self, keys: list[str], fields: Any, tags: list[dict[str, Any]], partition_id: str
    ) -> None:
        """One session's outputs (``{uid}_{session}_{i}``), as plain per-key dicts."""
        for i, key in enumerate(keys):
            row = {name: _item(fields[name], i) for name in fields.keys()}  # noqa: SIM118
            self.rows[key] = {**row, "tag": tags[i]}


def _item(value: Any, i: int) -> Any:
    item = value[i]
    return getattr(item, "data", item)


@contextlib.contextmanager
def offline_tq_worker(
    config: Any,
    server: Any,
    processor: Any,
    *,
    agent_loops: Sequence[Mapping[str, Any]] = (),
) -> Iterator[tuple[Any, InMemoryTQ]]:
    """The medgym TQ worker without Ray or TransferQueue, for CPU dry runs and tests.

    The worker is verl's ``AgentLoopWorkerTQ`` with medgym's mixin; its ``_run_prompt`` and
    ``_agent_loop_postprocess`` are verl's own. ``__init__`` (Ray, TransferQueue, model
    config) is skipped and the attributes it would set are given; TransferQueue is replaced
    by an :class:`InMemoryTQ` while the context is open.

    Args:
        config: The trainer config (``actor_rollout_ref.rollout``, ``data``, ``medgym``).
        server: The LLM server stand-in (``generate``).
        processor: The model's processor (its ``tokenizer`` is the worker's tokenizer).
        agent_loops: Agent-loop registry entries to register (``name``, ``_target_``, ...).

    Yields:
        The worker and the in-memory queue.
    """
    from omegaconf import OmegaConf
    from verl.experimental.agent_loop import agent_loop as verl_agent_loop
    from verl.trainer.ppo.v1 import agent_loop_tq

    from medgym.integrations.verl.dataset import MedgymRLHFDataset
    from medgym.integrations.verl.tq_worker import MedgymAgentLoopWorkerTQ

    registry: dict[str, Any] = verl_agent_loop._agent_loop_registry
    saved_registry, saved_tq = dict(registry), agent_loop_tq.tq
    queue = InMemoryTQ()
    for entry in agent_loops:
        registry[str(entry["name"])] = OmegaConf.create(dict(entry))
    worker: Any = object.__new__(MedgymAgentLoopWorkerTQ)
    vars(worker).update(
        config=config,
        llm_client=server,
        teacher_client=None,
        reward_loop_worker_handles=None,
        tokenizer=processor.tokenizer,
        processor=processor,
        hf_model_type="qwen2_5_vl",
        dataset_cls=MedgymRLHFDataset,
        mm_processor_kwargs={},
        distillation_enabled=False,
        tools=[],
        background_tasks=set(),
    )
    agent_loop_tq.tq = SimpleNamespace(
        async_kv_put=queue.async_kv_put, async_kv_batch_put=queue.async_kv_batch_put
    )
    try:
        yield worker, queue
    finally:
        agent_loop_tq.tq = saved_tq
        registry.clear()
        registry.update(saved_registry)
