"""W&B public API reader, what the user sees when a fetch fails: where the API key comes from (and that it never
reaches output, notes or the cache) and one line per failure that says what happened and what to do."""

from __future__ import annotations

import os

from lossdoctor.errors import SourceError
from lossdoctor.sources._wandb_http import FetchError
from lossdoctor.sources._wandb_url import RunRef

NO_KEY = "no W&B API key: set WANDB_API_KEY or run `wandb login`"


def api_key_for(api_base: str) -> str | None:
    """``$WANDB_API_KEY``, else the key ``wandb login`` stored in netrc for the API host."""
    key = (os.environ.get("WANDB_API_KEY") or "").strip()
    if key:
        return key
    import netrc
    from urllib.parse import urlsplit

    host = (urlsplit(api_base).hostname or "").lower()
    path = os.environ.get("NETRC") or os.path.join(os.path.expanduser("~"), ".netrc")
    try:
        auth = netrc.netrc(path).authenticators(host)
    except (OSError, netrc.NetrcParseError, UnicodeDecodeError):
        return None
    return auth[2] if auth and auth[2] else None


def scrub(text: str, secret: str | None) -> str:
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, "***")
    return text[:2000]


def map_error(exc: FetchError, ref: RunRef, location: str, timeout: float, secret: str | None) -> SourceError:
    """One line that says what happened, and what to do."""
    host = ref.api_base
    text = scrub(str(exc), secret)
    if exc.kind == "dns":
        return SourceError(f"cannot reach W&B host {host}: {text}", location)
    if exc.kind == "network":
        return SourceError(f"cannot reach W&B host {host}: {text}", location)
    if exc.status in (401, 403):
        return SourceError(
            f"W&B rejected the API key (HTTP {exc.status}) at {host}; check WANDB_API_KEY or run "
            f"`wandb login --relogin`",
            location,
        )
    if exc.kind == "status" and exc.status == 404 and not text.startswith("download of"):
        return SourceError(f"no W&B API at {host} (HTTP 404 for /graphql): {text}; check the URL's host", location)
    if exc.kind == "timeout" or exc.kind == "cancelled":
        return SourceError(
            f"W&B at {host} did not answer within the {timeout:g}s budget ({text}); retry later or raise --timeout",
            location,
        )
    if exc.kind == "persistent":
        return SourceError(f"W&B at {host} serves other runs but not this one: {text}", location)
    if exc.kind == "status" and "gave up after" in text:
        return SourceError(f"W&B at {host} kept failing within the {timeout:g}s budget: {text}; retry later", location)
    if exc.kind == "dropped":
        return SourceError(f"W&B at {host} kept dropping the connection: {text}; retry later", location)
    return SourceError(f"W&B at {host}: {text}", location)
