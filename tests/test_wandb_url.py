"""Run URL / path normalisation: every pasted form maps to (api base, entity, project, run id)."""

from __future__ import annotations

import pytest

from lossdoctor.sources._wandb_url import DEFAULT_API, NotARunURL, RunRef, parse_run_ref

CLOUD = "https://api.wandb.ai"


@pytest.mark.parametrize(
    "text",
    [
        "https://wandb.ai/my-team/llm-sft/runs/02-21-attn-360m-redo1",
        "https://wandb.ai/my-team/llm-sft/runs/02-21-attn-360m-redo1/",
        "https://wandb.ai/my-team/llm-sft/runs/02-21-attn-360m-redo1/overview",
        "https://wandb.ai/my-team/llm-sft/runs/02-21-attn-360m-redo1/overview?nw=nwuserme",
        "https://wandb.ai/my-team/llm-sft/runs/02-21-attn-360m-redo1?nw=nwuserme",
        "https://wandb.ai/my-team/llm-sft/runs/02-21-attn-360m-redo1/logs",
        "https://wandb.ai/my-team/llm-sft/runs/02-21-attn-360m-redo1/files/output.log",
        "https://wandb.ai/my-team/llm-sft/runs/02-21-attn-360m-redo1/panel/abc123?nw=x",
        "https://wandb.ai/my-team/llm-sft/runs/02-21-attn-360m-redo1?workspace=user-me#section",
        "  https://WANDB.AI/my-team/llm-sft/runs/02-21-attn-360m-redo1  ",
    ],
)
def test_cloud_url_forms(text: str) -> None:
    assert parse_run_ref(text, env={}) == RunRef(CLOUD, "my-team", "llm-sft", "02-21-attn-360m-redo1")


@pytest.mark.parametrize(
    "text",
    [
        "https://forge.coreweave.com/wandb/ent/proj/runs/abc123",
        "https://forge.coreweave.com/wandb/ent/proj/runs/abc123/overview?nw=1",
    ],
)
def test_forge_urls(text: str) -> None:
    assert parse_run_ref(text, env={}) == RunRef(DEFAULT_API, "ent", "proj", "abc123")


def test_url_encoded_entity() -> None:
    assert parse_run_ref("https://wandb.ai/my%20team/p/runs/x1", env={}).entity == "my team"


@pytest.mark.parametrize("text", ["ent/proj/runs/abc-1", "/ent/proj/runs/abc-1/", "ent/proj/abc-1", "ent/proj:abc-1"])
def test_paths_use_wandb_base_url_or_default(text: str) -> None:
    assert parse_run_ref(text, env={}) == RunRef(DEFAULT_API, "ent", "proj", "abc-1")
    env = {"WANDB_BASE_URL": "https://wandb.corp.example/"}
    assert parse_run_ref(text, env=env) == RunRef("https://wandb.corp.example", "ent", "proj", "abc-1")


@pytest.mark.parametrize(
    "text,base",
    [
        ("https://wandb.corp.example/ent/proj/runs/r1", "https://wandb.corp.example"),
        ("https://app.corp.example/ent/proj/runs/r1/overview", "https://api.corp.example"),
        ("http://127.0.0.1:8080/ent/proj/runs/r1", "http://127.0.0.1:8080"),
    ],
)
def test_self_hosted_hosts(text: str, base: str) -> None:
    assert parse_run_ref(text, env={"WANDB_BASE_URL": "https://elsewhere"}) == RunRef(base, "ent", "proj", "r1")


@pytest.mark.parametrize(
    "text",
    [
        "https://wandb.ai/my-team/llm-sft/workspace?nw=nwuserme",
        "https://wandb.ai/my-team/llm-sft/sweeps/abc123",
        "https://wandb.ai/my-team/llm-sft/reports/My-Report--VmlldzoxMjM",
        "https://wandb.ai/my-team/llm-sft",
        "https://wandb.ai/my-team/llm-sft/runs",
        "https://wandb.ai/my-team/llm-sft/artifacts/model/x/v0",
        "ftp://wandb.ai/e/p/runs/x",
        "ent/proj",
        "ent/proj/workspace",
    ],
)
def test_not_run_urls(text: str) -> None:
    with pytest.raises(NotARunURL, match="^not a run URL: "):
        parse_run_ref(text, env={})
