"""W&B run URLs and paths → (api_base_url, entity, project, run_id).

Why: ``wandb.Api().run()`` accepts only paths (``e/p/id``, ``e/p/runs/id``); a pasted browser URL fails with
"missing project", and so do ``/overview``, ``/logs`` or ``?nw=…`` tails. People paste whatever their
browser shows, so every form below maps to the same run:

* ``https://wandb.ai/<e>/<p>/runs/<id>`` and ``https://forge.coreweave.com/wandb/<e>/<p>/runs/<id>``,
  optionally followed by ``/overview``, ``/logs``, ``/files/<path>``, ``/panel/<id>``, ``/system`` …,
  a query string (``?nw=nwuser…``, ``?workspace=…``) and a fragment;
* a self-hosted host (``https://wandb.corp.com/...``; ``app.X`` serves its API at ``api.X``);
* paths ``e/p/runs/id``, ``/e/p/runs/id/``, ``e/p/id``, ``e/p:id`` — these use ``WANDB_BASE_URL`` when
  set (as wandb does), else the client's default host.

Entities are URL-decoded (``my%20team``); run ids may contain dashes. Workspace, sweep, report, artifact
and project-only URLs are refused with "not a run URL".
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

#: wandb 0.31's default API host (earlier versions used api.wandb.ai; 0.31 treats both as one deployment).
DEFAULT_API = "https://api.forge.coreweave.com"
_CLOUD_API = {
    "wandb.ai": "https://api.wandb.ai",
    "www.wandb.ai": "https://api.wandb.ai",
    "app.wandb.ai": "https://api.wandb.ai",
    "api.wandb.ai": "https://api.wandb.ai",
    "forge.coreweave.com": DEFAULT_API,
    "api.forge.coreweave.com": DEFAULT_API,
}
_NOT_RUN = {
    "sweeps",
    "reports",
    "workspace",
    "artifacts",
    "groups",
    "table",
    "jobs",
    "automations",
    "overview",
    "settings",
    "models",
}
_SEGMENT = re.compile(r"^[^\s/]+$")


class NotARunURL(ValueError):
    """The text is a URL or path, but it does not point at one run."""


@dataclass(frozen=True)
class RunRef:
    """One W&B run: the API it lives on, its entity, project and id."""

    api_base: str
    entity: str
    project: str
    run_id: str

    @property
    def path(self) -> str:
        """The ``e/p/id`` path ``wandb.Api().run`` accepts."""
        return f"{self.entity}/{self.project}/{self.run_id}"

    def display(self) -> str:
        return f"{self.api_base} {self.path}"


def _default_base(env: Mapping[str, str]) -> str:
    base = (env.get("WANDB_BASE_URL") or "").strip().rstrip("/")
    if base and not re.match(r"^https?://[^/\s?#]+(/[^\s?#]*)?$", base):
        raise NotARunURL(f"WANDB_BASE_URL must be an http(s) URL, got {base[:80]!r}")
    return base or DEFAULT_API


def _api_for_host(scheme: str, netloc: str) -> str:
    host = netloc.lower()
    bare = host.split("@")[-1]
    name = bare.split(":")[0]
    if name in _CLOUD_API:
        return _CLOUD_API[name]
    if name.startswith("app.") and name.count(".") >= 2:
        bare = "api." + bare[len("app.") :]
    return f"{scheme}://{bare}"


def _from_segments(segs: list[str], text: str) -> tuple[str, str, str]:
    """(entity, project, run id) from path segments ``e p runs id [rest…]`` or ``e p id``."""
    if len(segs) >= 4 and segs[2] == "runs":
        entity, project, run_id = segs[0], segs[1], segs[3]
    elif len(segs) == 3 and segs[2] not in _NOT_RUN and segs[2] != "runs":
        entity, project, run_id = segs
    elif len(segs) == 2 and ":" in segs[1]:
        project, run_id = segs[1].split(":", 1)
        entity = segs[0]
    else:
        raise NotARunURL(f"not a run URL: {text} (expected .../<entity>/<project>/runs/<run id>)")
    for part in (entity, project, run_id):
        if not part.strip() or "/" in part or part in (".", "..") or (part is run_id and not _SEGMENT.match(part)):
            raise NotARunURL(f"not a run URL: {text} (expected .../<entity>/<project>/runs/<run id>)")
    return entity, project, run_id


def parse_run_ref(text: str, env: Mapping[str, str] | None = None) -> RunRef:
    """Normalise a run URL or path; raises NotARunURL (a ValueError) with a one-line message."""
    env = os.environ if env is None else env
    raw = text.strip()
    if re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*://", raw):
        parts = urlsplit(raw)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise NotARunURL(f"not a run URL: {text} (expected an http(s) W&B run URL)")
        segs = [unquote(s) for s in parts.path.split("/") if s]
        host = parts.netloc.lower().split("@")[-1].split(":")[0]
        if host in ("forge.coreweave.com", "api.forge.coreweave.com") and segs[:1] == ["wandb"]:
            segs = segs[1:]
        # a self-hosted server may live under a path prefix: find "runs" two segments after the entity
        if "runs" in segs[2:]:
            i = segs.index("runs", 2)
            prefix, segs = segs[: i - 2], segs[i - 2 :]
        else:
            prefix = []
        if len(segs) < 4 or segs[2] != "runs":
            raise NotARunURL(f"not a run URL: {text} (expected .../<entity>/<project>/runs/<run id>)")
        entity, project, run_id = _from_segments(segs, text)
        base = _api_for_host(parts.scheme, parts.netloc)
        if prefix and host not in _CLOUD_API:
            base = base + "/" + "/".join(prefix)
        return RunRef(base, entity, project, run_id)
    segs = [unquote(s) for s in raw.split("/") if s]
    entity, project, run_id = _from_segments(segs, text)
    return RunRef(_default_base(env), entity, project, run_id)


def looks_like_run_path(text: str) -> bool:
    """Cheap test for sniffing: a run URL or ``e/p/runs/id`` / ``e/p/id`` path (no whitespace)."""
    try:
        parse_run_ref(text, env={})
    except NotARunURL:
        return False
    return True
