"""medgym tools loaded by verl from the shipped YAMLs: create/execute/release and errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
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


class FakeToolServer:
    """A tool-server client that runs the tools in process and records what it was sent."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict, dict]] = []

    def register(self, ref):  # type: ignore[no-untyped-def]
        from medgym.data.cache import load_image
        from medgym.serving.schemas import ImageDescription

        im = load_image(ref)
        return ImageDescription(
            ref=ref, width=im.width, height=im.height, num_slices=im.num_slices,
            channels=im.pixels.shape[-1], modality=im.modality, default_window=im.default_window,
        )  # fmt: skip

    def call_tool(self, images, views, name, arguments, **options):  # type: ignore[no-untyped-def]
        from medgym.data.cache import load_image
        from medgym.errors import ToolError
        from medgym.serving.schemas import ToolCallResponse
        from medgym.tools import TOOLS, ImageInfo, ToolContext

        self.calls.append((name, arguments, options))
        if arguments.get("bbox_2d", [0])[0] > 400:
            raise ToolError("box outside the image")
        from medgym.envs.profiles import get_profile
        from medgym.tools import ToolConfig

        infos = tuple(ImageInfo.of(load_image(r)) for r in images)
        profile = get_profile(options["profile"], max_pixels=options["max_pixels"])
        ctx = ToolContext(
            views=tuple(views), images=infos, sizer=profile.view_size,
            config=ToolConfig(**options["tool_config"]),
        )  # fmt: skip
        res = TOOLS[name](ctx, arguments)
        return ToolCallResponse(name=name, ok=res.ok, text=res.text, view=res.view)

    def render(self, images, view, encoding="raw"):  # type: ignore[no-untyped-def]
        from medgym.core.view import render
        from medgym.data.cache import load_image

        return render(load_image(images[view.image_index]), view)


def test_server_backend_sends_view_pixel_args_options_and_aliases(samples: list) -> None:
    from medgym.envs.config import SessionConfig
    from medgym.envs.profiles import get_profile
    from medgym.envs.session import EpisodeSession
    from medgym.serving.remote import ServerBackend

    client = FakeToolServer()
    profile = get_profile("qwen2.5-vl", max_pixels=200_000)
    session = EpisodeSession(
        samples[0], profile=profile, backend=ServerBackend(client, profile),  # type: ignore[arg-type]
        config=SessionConfig.from_dict({"tool_config": {"clamp_penalty": 0.02}}),
    )  # fmt: skip
    local = EpisodeSession(samples[0], profile=profile)
    assert session.views == local.views
    ok = session.call_tool("image_zoom_in_tool", {"bbox_2d": [0, 0, 224, 224]})
    bad = session.call_tool("zoom_in", {"bbox_2d": [420, 420, 440, 440]})
    assert ok.ok and ok.view_index == 1 and len(session.views) == 2
    assert not bad.ok and bad.penalty == pytest.approx(Penalties().tool_error)
    # the alias resolves locally; profile, max_pixels and tool_config travel with every call
    assert [c[0] for c in client.calls] == ["zoom_in", "zoom_in"]
    assert client.calls[0][1] == {"bbox_2d": [0.0, 0.0, 224.0, 224.0]}  # only what was set
    opts = client.calls[0][2]
    assert opts["max_pixels"] == 200_000 and opts["tool_config"]["clamp_penalty"] == 0.02
    local.call_tool("zoom_in", {"bbox_2d": [0, 0, 224, 224]})
    assert session.views[1] == local.views[1]
    assert np.array_equal(session.pixels(1), local.pixels(1))


def test_remote_tool_yaml_builds_a_server_backed_session(
    samples: list, monkeypatch: pytest.MonkeyPatch
) -> None:
    from medgym.integrations.verl import tools as verl_tools
    from medgym.serving.remote import ServerBackend

    client = FakeToolServer()
    monkeypatch.setattr(verl_tools, "shared_client", lambda url: client)
    cfg = verl_tools.tool_config(["zoom_in"], backend="remote", server_url="http://127.0.0.1:1")
    entry = cfg["tools"][0]
    from verl.tools.schemas import OpenAIFunctionToolSchema

    tool = verl_tools.MedgymTool(
        {**entry["config"], "session": {"max_images": 1}},
        OpenAIFunctionToolSchema.model_validate(entry["tool_schema"]),
    )
    assert tool.session_config.max_images == 1  # session keys of the YAML are kept

    async def go() -> tuple[float, object]:
        iid, _ = await tool.create(create_kwargs={"sample": samples[0].model_dump_json()})
        await tool.execute(iid, {"bbox_2d": [0, 0, 224, 224]})
        await tool.execute(iid, {"bbox_2d": [0, 0, 100, 100]})  # past max_images
        return await tool.calc_reward(iid), tool._instances[iid][verl_tools.SESSION_KEY]

    reward, session = asyncio.run(go())
    assert isinstance(session.backend, ServerBackend)  # type: ignore[attr-defined]
    assert len(client.calls) == 1 and reward == pytest.approx(-Penalties().budget)


def test_unknown_tool_yaml_key_is_named() -> None:
    from verl.tools.schemas import OpenAIFunctionToolSchema

    from medgym.integrations.verl.tools import MedgymTool, verl_schema

    schema = OpenAIFunctionToolSchema.model_validate(verl_schema("zoom_in"))
    with pytest.raises(ConfigError, match="did you mean `server_url`"):
        MedgymTool({"tools": ["zoom_in"], "server_ur": "x"}, schema)
    with pytest.raises(ConfigError, match="did you mean `max_images`"):
        MedgymTool({"tools": ["zoom_in"], "session": {"max_image": 2}}, schema)
