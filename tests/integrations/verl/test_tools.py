"""medgym tools loaded by verl from the shipped YAMLs: create/execute/release and errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytest.importorskip("verl")

from medgym.core.sample import Sample
from medgym.envs.config import Penalties
from medgym.errors import ConfigError
from medgym.integrations.verl.tools import SESSION_KEY, tool_yaml, verl_schema
from medgym.tools import ALL_TOOLS, ZOOM_TOOLS

REPO = Path(__file__).resolve().parents[3]


def _load(path: Path) -> dict[str, Any]:
    from verl.tools.tool_registry import initialize_tools_from_config

    return {t.name: t for t in initialize_tools_from_config(str(path))}


@pytest.fixture(scope="module")
def tools() -> dict[str, Any]:
    return _load(REPO / "tools" / "verl_all.yaml")


def _run(tool: Any, sample: Sample, args: dict, agent_data: Any) -> tuple[Any, float, dict]:
    async def go() -> tuple[Any, float, dict]:
        iid, _ = await tool.create(create_kwargs={"sample": sample.model_dump_json()})
        try:
            return await tool.execute(iid, args, agent_data=agent_data)
        finally:
            await tool.release(iid)
            assert iid not in tool._instances

    return asyncio.run(go())


@pytest.mark.parametrize(
    ("name", "names"),
    [
        pytest.param("verl_zoom.yaml", ZOOM_TOOLS, id="zoom"),
        pytest.param("verl_all.yaml", ALL_TOOLS, id="all"),
    ],
)
def test_shipped_yaml_is_current(name: str, names: tuple[str, ...]) -> None:
    import yaml

    shipped = yaml.safe_load((REPO / "tools" / name).read_text())
    assert shipped == yaml.safe_load(tool_yaml(list(names)))
    assert set(_load(REPO / "tools" / name)) == set(names)


def test_schema_has_only_what_verl_keeps() -> None:
    props = verl_schema("zoom_in")["function"]["parameters"]["properties"]
    assert props["bbox_2d"]["type"] == "array"
    assert all(set(p) <= {"type", "description", "enum"} for p in props.values())


def test_unknown_tool_suggests_name() -> None:
    with pytest.raises(ConfigError, match="zoom_in"):
        verl_schema("zoom_inn")


def test_zoom_then_reground_share_the_trajectory_session(tools: dict, samples: list) -> None:
    agent = SimpleNamespace(extra_fields={})
    resp, reward, metrics = _run(tools["zoom_in"], samples[0], {"bbox_2d": [0, 0, 224, 224]}, agent)
    assert reward == 0.0 and metrics["ok"] == 1.0
    assert isinstance(resp.image, list) and len(resp.image) == 1
    session = agent.extra_fields[SESSION_KEY]
    assert session.views[1].bbox_px == pytest.approx((0, 0, 1024, 1024))
    resp2, _, _ = _run(tools["reground"], samples[0], {"image_index": 1}, agent)
    assert resp2.image is not None and len(session.views) == 3


@pytest.mark.parametrize(
    ("name", "args"),
    [
        pytest.param("zoom_in", {"bbox_2d": [500, 500, 600, 600]}, id="box-outside"),
        pytest.param("zoom_in", {"bbox_2d": "left"}, id="not-a-box"),
        pytest.param("rotate", {"degrees": 45}, id="bad-angle"),
        pytest.param("reground", {"image_index": 9}, id="no-such-view"),
    ],
)
def test_model_errors_give_text_and_step_penalty(
    tools: dict, samples: list, name: str, args: dict
) -> None:
    resp, reward, metrics = _run(tools[name], samples[0], args, SimpleNamespace(extra_fields={}))
    assert resp.text.startswith("Error") and not resp.image
    assert reward == pytest.approx(-Penalties().tool_error)
    assert metrics["ok"] == 0.0


def test_missing_sample_is_a_config_error(tools: dict) -> None:
    async def go() -> None:
        iid, _ = await tools["zoom_in"].create(create_kwargs={})
        await tools["zoom_in"].execute(
            iid, {"bbox_2d": [0, 0, 9, 9]}, agent_data=SimpleNamespace(extra_fields={})
        )

    with pytest.raises(ConfigError, match="create_kwargs"):
        asyncio.run(go())


def test_without_agent_data_the_instance_keeps_its_session(tools: dict, samples: list) -> None:
    tool = tools["zoom_in"]

    async def go() -> float:
        iid, _ = await tool.create(create_kwargs={"sample": samples[0].model_dump_json()})
        await tool.execute(iid, {"bbox_2d": [0, 0, 10, 10, 3]})
        return await tool.calc_reward(iid)

    assert asyncio.run(go()) < 0


def test_remote_registry_sends_view_pixel_args_and_keeps_session_rules(samples: list) -> None:
    from medgym.envs.session import EpisodeSession
    from medgym.errors import ToolError
    from medgym.integrations.verl.tools import remote_registry
    from medgym.serving.schemas import ToolCallResponse
    from medgym.tools import TOOLS

    class FakeClient:
        def __init__(self) -> None:
            self.calls: list[tuple[str, dict]] = []

        def call_tool(self, images, views, name, arguments, **options):  # type: ignore[no-untyped-def]
            self.calls.append((name, arguments))
            if arguments.get("bbox_2d", [0])[0] > 400:
                raise ToolError("box outside the image")
            session_ctx = session.tool_context()
            res = TOOLS[name](session_ctx, arguments)
            return ToolCallResponse(name=name, ok=res.ok, text=res.text, view=res.view)

    session = EpisodeSession(samples[0])
    client = FakeClient()
    session.tools = remote_registry(client, session)
    ok = session.call_tool("zoom_in", {"bbox_2d": [0, 0, 224, 224]})
    bad = session.call_tool("zoom_in", {"bbox_2d": [420, 420, 440, 440]})
    assert ok.ok and ok.view_index == 1 and len(session.views) == 2
    assert not bad.ok and bad.penalty == pytest.approx(Penalties().tool_error)
    assert [c[0] for c in client.calls] == ["zoom_in", "zoom_in"]
