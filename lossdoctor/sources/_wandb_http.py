"""Bounded HTTP for the W&B public API: GraphQL requests and export downloads under one deadline.

Why not ``wandb.Api``: its requests go through the wandb-core child process, whose retries, timeouts and
response sizes cannot be bounded from here (a DNS failure was retried silently for 67 s, a 1 GB answer
took 2.7 GB, a timed-out scan kept a thread requesting after the error, a server-supplied ``file://``
URL was read). This module sends the same GraphQL wandb 0.31 sends (``/work``'s recorded requests:
``Run``, ``RunParquetHistory``, ``SampledHistoryPage``) with the same authentication, and bounds it:

* **One deadline.** Every connect, send, read, retry wait and download checks ``Deadline``; a read that
  trickles one byte a second still ends on time (the remaining time is re-applied between chunks).
* **Cancellation.** ``Deadline.cancel()`` makes every request in every worker thread stop at its next
  chunk; workers are daemon threads, so the process exits even if one is blocked in a syscall.
* **Size caps.** A GraphQL answer above ``MAX_RESPONSE_BYTES`` and a download above ``MAX_DOWNLOAD_BYTES``
  are refused (announced sizes up front, actual sizes while reading); no compressed transfer is asked for,
  and a gzip one is inflated under the same cap.
* **Only where the data lives.** GraphQL goes to the API base; downloads only to ``http(s)`` URLs on the
  API's host or a known storage host (``STORAGE_HOSTS``, plus ``$LOSSDOCTOR_WANDB_STORAGE_HOSTS``);
  ``file://`` and redirects elsewhere are refused.
* **Fast, true errors.** DNS failure, no route and refused connections fail at once (no retries); 429
  (``Retry-After`` obeyed when it fits), 5xx and dropped connections are retried inside the deadline.
* **One run's fault is not an outage.** Every client records its latest answer in the process's view of
  the server (``ServerHealth``). A request that keeps answering 5xx (or dropping) stops after
  ``OWN_FAULT_TRIES`` attempts when, since its first failure, at least ``OWN_FAULT_WITNESSES`` other clients
  (other runs) got answers from the same server and nearly all of them were fine: the server is up and this
  query fails on its own (a run W&B cannot serve), so spending the whole budget on it would only hold a
  triage slot. With no such evidence (one run analysed alone, everyone failing: an outage, or a flaky server
  failing others too) the request keeps retrying until the deadline, so a transient outage does not fail a
  CI job.
  Every failure is a ``FetchError`` whose message says what happened: the HTTP status, the content type
  that was not JSON, the timeout, the size cap.
"""

from __future__ import annotations

import base64
import itertools
import json
import os
import random
import socket
import threading
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import http.client
from urllib.parse import urlsplit

#: Largest GraphQL answer read (a 10,000-row page of 3 keys is ~1 MB; a big config a few MB).
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
#: Largest single export file downloaded (to disk, never to memory).
MAX_DOWNLOAD_BYTES = 1024 * 1024 * 1024
#: Longest one request may take even when the deadline is further away (wandb-core uses 30 s).
PER_REQUEST_S = 30.0
#: Statuses never retried (as wandb-core: the answer will not change).
NO_RETRY = {400, 401, 403, 404, 405, 409, 410, 413, 422, 501}
#: Object stores W&B serves exports from (signed URLs), besides the API's own host.
STORAGE_HOSTS = (
    "storage.googleapis.com",
    ".storage.googleapis.com",
    ".amazonaws.com",
    ".blob.core.windows.net",
    ".wandb.ai",
    ".coreweave.com",
    ".cwobject.com",
    ".cwlota.com",
)
USER_AGENT = "lossdoctor (W&B public API reader)"
_CHUNK = 64 * 1024
#: attempts a request makes before it may give up early because other runs are served fine meanwhile
OWN_FAULT_TRIES = 3
#: how many other clients must have been answered (nearly all fine) since the request's first failure
OWN_FAULT_WITNESSES = 2


class FetchError(Exception):
    """A request failed; ``str()`` is one line saying what happened. ``kind`` is one of: dns, network,
    timeout, status, content, size, graphql, url, cancelled, dropped, persistent (a 5xx or dropped
    connection the server kept giving this request while it answered other runs)."""

    def __init__(self, message: str, kind: str, status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(" ".join(message.split()))
        self.kind, self.status, self.retry_after = kind, status, retry_after


class Deadline:
    """A point in time every request respects, and a cancel switch shared by all worker threads."""

    def __init__(self, seconds: float) -> None:
        self.seconds = float(seconds)
        self.end = time.monotonic() + self.seconds
        self._cancel = threading.Event()

    def left(self) -> float:
        return self.end - time.monotonic()

    def cancel(self) -> None:
        self._cancel.set()

    @property
    def cancelled(self) -> bool:
        return self._cancel.is_set()

    def check(self, what: str) -> float:
        """Seconds left; raises FetchError when none are (or the fetch was cancelled)."""
        if self._cancel.is_set():
            raise FetchError(f"{what}: cancelled", "cancelled")
        left = self.left()
        if left <= 0:
            raise FetchError(f"{what}: no answer within the {self.seconds:g}s budget", "timeout")
        return left

    def sleep(self, seconds: float) -> bool:
        """Wait (cancellable); False when the wait would pass the deadline (nothing is waited then)."""
        if seconds >= self.left():
            return False
        return not self._cancel.wait(seconds)


class ServerHealth:
    """This process's view of one server: each client's latest outcome (ok: any HTTP answer below 500 but
    429; failing: 5xx, 429, a dropped connection). Shared by every ``HttpClient`` of the process that talks to
    the same scheme, host and port, so concurrent runs see each other's answers. Bounded: the latest
    ``KEEP`` clients."""

    KEEP = 256

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._latest: dict[int, tuple[float, bool]] = {}

    def record(self, client: int, ok: bool) -> None:
        with self._lock:
            self._latest.pop(client, None)
            self._latest[client] = (time.monotonic(), ok)  # insertion order = time order
            while len(self._latest) > self.KEEP:
                del self._latest[next(iter(self._latest))]

    def others_fine_since(self, client: int, since: float) -> bool:
        """True when at least OWN_FAULT_WITNESSES other clients were answered since ``since`` and their latest
        outcomes are fine at least 3 to 1 (one other broken run does not hide a healthy server; a flaky
        server that fails others too, or an outage, is never taken for a healthy one)."""
        with self._lock:
            outcomes = [ok for cid, (t, ok) in self._latest.items() if cid != client and t >= since]
        fine = sum(outcomes)
        return fine >= OWN_FAULT_WITNESSES and fine >= 3 * (len(outcomes) - fine)


#: a host another client of this process resolved this recently is not looked up again
RESOLVED_TTL_S = 60.0
_RESOLVED: dict[tuple[str, int], float] = {}
_RESOLVED_LOCK = threading.Lock()
_HEALTH: dict[tuple[str, str, int], ServerHealth] = {}
_HEALTH_LOCK = threading.Lock()
_CLIENT_SERIAL = itertools.count(1)


def server_health(scheme: str, host: str, port: int) -> ServerHealth:
    """The shared view of one server (at most 64 servers kept: the oldest is forgotten)."""
    key = (scheme, host, port)
    with _HEALTH_LOCK:
        health = _HEALTH.get(key)
        if health is None:
            health = _HEALTH[key] = ServerHealth()
            while len(_HEALTH) > 64:
                del _HEALTH[next(iter(_HEALTH))]
        return health


@dataclass(frozen=True)
class Response:
    status: int
    content_type: str
    body: bytes
    retry_after: float | None = None
    location: str | None = None


def _host_port(netloc: str, scheme: str) -> tuple[str, int]:
    host = netloc.rsplit("@", 1)[-1]
    if host.startswith("["):
        h, _, rest = host[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        h, _, port = host.partition(":")
    return h.lower(), int(port) if port.isdigit() else (443 if scheme == "https" else 80)


def resolve(host: str, port: int, deadline: Deadline) -> None:
    """Look the host up within the deadline (getaddrinfo has no timeout of its own): a DNS failure or no
    network is a FetchError at once, never a retry."""
    result: dict[str, Any] = {}

    def look() -> None:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except OSError as exc:
            result["error"] = exc

    thread = threading.Thread(target=look, name="wandb-dns", daemon=True)
    thread.start()
    thread.join(max(0.0, deadline.check(f"looking up {host}")))
    if thread.is_alive():
        raise FetchError(
            f"looking up {host} took longer than the {deadline.seconds:g}s budget (no network or a slow DNS server?)",
            "timeout",
        )
    exc = result.get("error")
    if exc is not None:
        reason = " ".join(str(getattr(exc, "strerror", None) or exc).split())
        raise FetchError(f"cannot resolve host {host} ({reason}): no network or a wrong host name", "dns")


class HttpClient:
    """Requests to one W&B deployment, all under ``deadline``."""

    def __init__(
        self, api_base: str, api_key: str | None, deadline: Deadline, progress: Callable[[int], None] | None = None
    ) -> None:
        parts = urlsplit(api_base)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise FetchError(f"not an http(s) API base: {api_base}", "url")
        self.api_base = api_base.rstrip("/")
        self.scheme = parts.scheme
        self.host, self.port = _host_port(parts.netloc, parts.scheme)
        self.prefix = parts.path.rstrip("/")
        self.deadline = deadline
        self.progress = progress
        self._resolved: set[tuple[str, int]] = set()
        self._lock = threading.Lock()
        self.headers = {
            "User-Agent": USER_AGENT,
            "Accept": "application/json",
            "Accept-Encoding": "identity",
            "Content-Type": "application/json",
        }
        if api_key:
            token = base64.b64encode(f"api:{api_key}".encode()).decode()
            self.headers["Authorization"] = f"Basic {token}"
        self.requests = 0
        self.serial = next(_CLIENT_SERIAL)  # who this client is in the shared ServerHealth views

    # -- the one place that talks to a socket ---------------------------------------------------------
    def _ensure_resolved(self, host: str, port: int) -> None:
        """Look the host up under the deadline once per client, or not at all when another client of the
        process did within RESOLVED_TTL_S (a triage's runs share the host: no lookup thread per run)."""
        with self._lock:
            if (host, port) in self._resolved:
                return
        with _RESOLVED_LOCK:
            seen = _RESOLVED.get((host, port))
        if seen is None or time.monotonic() - seen > RESOLVED_TTL_S:
            resolve(host, port, self.deadline)
            with _RESOLVED_LOCK:
                if len(_RESOLVED) >= 256:
                    _RESOLVED.clear()
                _RESOLVED[(host, port)] = time.monotonic()
        with self._lock:
            self._resolved.add((host, port))

    def _connect(self, scheme: str, host: str, port: int, timeout: float) -> http.client.HTTPConnection:
        import http.client  # the HTTP stack (ssl, email parsing) loads only when a request is made
        import ssl

        self._ensure_resolved(host, port)
        if scheme == "https":
            return http.client.HTTPSConnection(host, port, timeout=timeout, context=ssl.create_default_context())
        return http.client.HTTPConnection(host, port, timeout=timeout)

    def _once(
        self,
        method: str,
        scheme: str,
        host: str,
        port: int,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        max_bytes: int,
        what: str,
        sink: Any = None,
    ) -> Response:
        """One request, read under the deadline and the size cap (into ``sink`` when given)."""
        import http.client
        import ssl

        timeout = min(PER_REQUEST_S, self.deadline.check(what))
        started = time.monotonic()
        conn = self._connect(scheme, host, port, timeout)
        try:
            try:
                conn.request(method, path, body=body, headers=headers)
                resp = conn.getresponse()
            except TimeoutError:
                raise FetchError(f"{what}: no answer within {timeout:.0f}s", "timeout") from None
            except ConnectionRefusedError:
                raise FetchError(f"{what}: connection refused by {host}:{port}", "network") from None
            except (
                ConnectionResetError,
                ConnectionAbortedError,
                BrokenPipeError,
                http.client.RemoteDisconnected,
                http.client.BadStatusLine,
            ) as exc:
                raise FetchError(f"{what}: connection dropped ({type(exc).__name__})", "dropped") from None
            except ssl.SSLError as exc:
                raise FetchError(f"{what}: TLS error ({exc.reason or exc})", "network") from None
            except OSError as exc:
                raise FetchError(f"{what}: {exc.strerror or exc}", "network") from None
            status = resp.status
            ctype = (resp.getheader("Content-Type") or "").split(";")[0].strip().lower()
            encoding = (resp.getheader("Content-Encoding") or "identity").strip().lower()
            retry_after = _retry_after(resp.getheader("Retry-After"))
            length = resp.getheader("Content-Length")
            if length and length.strip().isdigit() and int(length) > max_bytes and 200 <= status < 300:
                raise FetchError(
                    f"{what}: the answer announces {_mb(int(length))}, above the {_mb(max_bytes)} cap", "size", status
                )
            if encoding not in ("identity", "gzip", ""):
                raise FetchError(f"{what}: unsupported Content-Encoding {encoding!r}", "content", status)
            inflate = zlib.decompressobj(16 + zlib.MAX_WBITS) if encoding == "gzip" else None
            limit = max_bytes if 200 <= status < 300 else 64 * 1024  # an error page: its start is enough
            chunks: list[bytes] = []
            got = 0
            while True:
                left = self.deadline.check(what)
                if time.monotonic() - started > PER_REQUEST_S:
                    raise FetchError(f"{what}: the answer took longer than {PER_REQUEST_S:.0f}s", "timeout")
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    sock.settimeout(max(0.05, min(left, PER_REQUEST_S)))
                try:
                    raw = resp.read1(_CHUNK) if hasattr(resp, "read1") else resp.read(_CHUNK)
                except TimeoutError:
                    raise FetchError(
                        f"{what}: the answer was still arriving when time ran out ({got:,} bytes read)", "timeout"
                    ) from None
                except (OSError, http.client.HTTPException) as exc:
                    raise FetchError(
                        f"{what}: connection dropped while reading ({type(exc).__name__})", "dropped"
                    ) from None
                if not raw:
                    if (
                        length
                        and length.strip().isdigit()
                        and got < int(length)
                        and inflate is None
                        and 200 <= status < 300
                    ):
                        raise FetchError(
                            f"{what}: connection dropped after {got:,} of {int(length):,} bytes", "dropped", status
                        )
                    break
                data = raw
                if inflate is not None:
                    data = inflate.decompress(raw, limit + 1 - got)
                got += len(data)
                if got > limit:
                    if limit < max_bytes:
                        break
                    raise FetchError(f"{what}: the answer is larger than the {_mb(max_bytes)} cap", "size", status)
                if sink is not None and 200 <= status < 300:
                    sink.write(data)
                    if self.progress is not None:
                        self.progress(len(data))
                else:
                    chunks.append(data)
            return Response(status, ctype, b"".join(chunks), retry_after, resp.getheader("Location"))
        finally:
            conn.close()

    def _with_retries(self, attempt: Callable[[], Response], what: str, health: ServerHealth) -> Response:
        """Retry 429 / 5xx / dropped connections / per-request timeouts while the deadline allows; a 5xx or
        dropped connection only ``OWN_FAULT_TRIES`` times when the server answers other clients fine meanwhile
        (``ServerHealth``)."""
        wait = 0.5
        tries = 0
        last: FetchError | None = None
        first_failure: float | None = None
        while True:
            tries += 1
            try:
                resp = attempt()
            except FetchError as exc:
                if exc.kind == "dropped":
                    health.record(self.serial, False)
                if exc.kind not in ("dropped", "timeout") or exc.kind == "timeout" and self.deadline.left() <= 0:
                    raise
                last = exc
            else:
                health.record(self.serial, resp.status < 500 and resp.status != 429)
                if (
                    resp.status < 400
                    or resp.status in NO_RETRY
                    or (400 <= resp.status < 500 and resp.status != 429 and resp.status != 408)
                ):
                    return resp
                last = FetchError(
                    f"{what}: HTTP {resp.status}{_snippet(resp)}", "status", resp.status, resp.retry_after
                )
            if first_failure is None:
                first_failure = time.monotonic()
            own = last.kind == "dropped" or (last.status is not None and last.status >= 500)
            if own and tries >= OWN_FAULT_TRIES and health.others_fine_since(self.serial, first_failure):
                raise FetchError(
                    f"{last} (gave up after {tries} attempts: the server answered other runs fine meanwhile, "
                    "so it is up and fails this request on its own)",
                    "persistent",
                    last.status,
                )
            pause = last.retry_after if last.retry_after is not None else wait * (1 + random.random() / 4)
            if not self.deadline.sleep(pause):
                if last.kind == "timeout":
                    raise last
                raise FetchError(
                    f"{last} (gave up after {tries} attempt(s) within the {self.deadline.seconds:g}s budget)",
                    last.kind,
                    last.status,
                )
            wait = min(wait * 2, 8.0)

    # -- GraphQL ------------------------------------------------------------------------------------
    def graphql(self, operation: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        """``data`` of one GraphQL operation; FetchError for anything else (status, content, errors)."""
        what = f"{operation} request"
        body = json.dumps({"operationName": operation, "query": query, "variables": variables}).encode()
        path = f"{self.prefix}/graphql"

        def attempt() -> Response:
            self.requests += 1
            return self._once(
                "POST", self.scheme, self.host, self.port, path, body, self.headers, MAX_RESPONSE_BYTES, what
            )

        resp = self._with_retries(attempt, what, server_health(self.scheme, self.host, self.port))
        if resp.status >= 400:
            raise FetchError(f"{what}: HTTP {resp.status}{_snippet(resp)}", "status", resp.status)
        if resp.content_type not in ("application/json", "application/graphql-response+json", "text/json"):
            shown = resp.content_type or "no content type"
            raise FetchError(
                f"{what}: HTTP {resp.status} with {shown}, not JSON (not a W&B API, or a proxy/login page in the way)",
                "content",
                resp.status,
            )
        if not resp.body.strip():
            raise FetchError(f"{what}: HTTP {resp.status} with an empty body", "content", resp.status)
        try:
            payload = json.loads(resp.body)
        except RecursionError:
            raise FetchError(f"{what}: malformed JSON (nested too deeply)", "content", resp.status) from None
        except ValueError as exc:
            raise FetchError(f"{what}: malformed JSON ({str(exc)[:80]})", "content", resp.status) from None
        if not isinstance(payload, dict):
            raise FetchError(f"{what}: the JSON answer is not an object", "content", resp.status)
        errors = payload.get("errors")
        if errors:
            first = errors[0] if isinstance(errors, list) and errors else errors
            message = first.get("message") if isinstance(first, dict) else first
            raise FetchError(f"{what}: GraphQL error: {str(message)[:200]}", "graphql", resp.status)
        data = payload.get("data")
        if not isinstance(data, dict):
            raise FetchError(f"{what}: the answer has no 'data' object", "content", resp.status)
        return data

    # -- downloads ----------------------------------------------------------------------------------
    def allowed(self, url: str) -> bool:
        """http(s) on the API's host or a storage host; never file:// or anything else."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            return False
        host, _ = _host_port(parts.netloc, parts.scheme)
        if host == self.host:
            return True
        extra = tuple(
            h.strip().lower() for h in os.environ.get("LOSSDOCTOR_WANDB_STORAGE_HOSTS", "").split(",") if h.strip()
        )
        for pattern in STORAGE_HOSTS + extra:
            if pattern.startswith(".") and host.endswith(pattern) or host == pattern.lstrip("."):
                return True
        return False

    def download(self, url: str, dest: Path, max_bytes: int = MAX_DOWNLOAD_BYTES) -> int:
        """Stream ``url`` into ``dest`` (no credentials sent: signed URLs); returns the bytes written.
        At most 3 redirects, each checked like the URL itself."""
        for _ in range(4):
            if not self.allowed(url):
                scheme = urlsplit(url).scheme or "no scheme"
                raise FetchError(
                    f"refused to download {_short(url)}: {scheme} URL not on the W&B API host or a known storage host",
                    "url",
                )
            parts = urlsplit(url)
            host, port = _host_port(parts.netloc, parts.scheme)
            path = parts.path or "/"
            if parts.query:
                path += "?" + parts.query
            what = f"download of {_short(url)}"
            headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
            with open(dest, "wb") as sink:
                request = ("GET", parts.scheme, host, port, path, None, headers, max_bytes, what, sink)

                def attempt(request: tuple[Any, ...] = request) -> Response:
                    sink.seek(0)
                    sink.truncate()
                    return self._once(*request)

                resp = self._with_retries(attempt, what, server_health(parts.scheme, host, port))
                size = sink.tell()
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.location
                if not location:
                    raise FetchError(f"{what}: HTTP {resp.status} without a Location", "status", resp.status)
                url = location
                continue
            if resp.status >= 300:
                raise FetchError(f"{what}: HTTP {resp.status}{_snippet(resp)}", "status", resp.status)
            return size
        raise FetchError(f"download of {_short(url)}: more than 3 redirects", "status")


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return seconds if 0 <= seconds < 3600 else None


def _snippet(resp: Response) -> str:
    if not resp.body:
        return ""
    if resp.content_type in ("application/json", "text/plain"):
        text = " ".join(resp.body[:300].decode("utf-8", "replace").split())
        try:
            errors = json.loads(resp.body).get("errors")
            if isinstance(errors, list) and errors and isinstance(errors[0], dict):
                text = str(errors[0].get("message", text))
        except (ValueError, AttributeError, RecursionError):
            pass
        return f" ({text[:160]})" if text else ""
    return f" ({resp.content_type or 'no content type'})"


def _mb(n: int) -> str:
    return f"{n / (1024 * 1024):,.0f} MB" if n >= 1024 * 1024 else f"{n:,} bytes"


def _short(url: str) -> str:
    parts = urlsplit(url)
    base = f"{parts.scheme}://{parts.netloc}{parts.path}" if parts.netloc else url
    return base[:120]  # signed query strings are credentials of a kind: never shown
