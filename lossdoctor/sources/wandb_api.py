"""Runs on a W&B server, read through the public GraphQL API, cached per user.

Why this shape:

* **Complete history, never sampled.** ``run.history()`` samples on the server (non-deterministic).
  Like wandb 0.31's ``scan_history``, the exported part of the history is read from the server's Parquet
  exports (only the columns asked for) and the live tail is paged with ``SampledHistoryPage`` in windows
  built from the live step list the server returns, so each window holds at most one page of rows.
* **Only the keys the rules need, in parallel.** A page with keys returns only rows holding *every* key,
  and HF logs train and eval metrics in different rows, so keys logged in the same rows are paged together
  and groups run in parallel. Wanted keys: every history key whose canonical name is in the alias table
  plus every ``eval/*`` key.
* **Bounded.** Requests go through :mod:`lossdoctor.sources._wandb_http` (not ``wandb.Api``, whose wandb-core
  process cannot be bounded from here): one ``--timeout`` deadline for every request, retry and download,
  daemon workers cancelled with it, size caps, downloads only from the API's or a storage host.
* **Complete or not cached.** Each key's point count is checked against the server's own count
  (``historyKeys.typeCounts``); a short key is paged again at a small page size; a run still short, or a
  Run answer with empty ``historyKeys`` for a run that has history, is never stored in the cache.
* **One-line errors.** Every failure is a SourceError naming the run URL and saying what happened (status
  code, content type, timeout, size cap); the API key never reaches output, notes or the cache.

One module per concern: :mod:`._wandb_fetch` (the keys, the composed history, the table), :mod:`._wandb_errors`
(the key, one-line errors), :mod:`._wandb_workers` (parallel workers under the deadline, the progress line),
:mod:`._wandb_parquet` (the exports), :mod:`._wandb_paging` (the live tail and the count check),
:mod:`._wandb_cache`. This module is the registered reader: it sniffs with the URL parser alone and imports
the rest when a run is read.
"""

from __future__ import annotations

import time

from lossdoctor.errors import SourceError
from lossdoctor.model import Provenance, Run
from lossdoctor.sources._wandb_url import NotARunURL, looks_like_run_path, parse_run_ref
from lossdoctor.sources.base import ReadOptions, Target


class WandbApiSource:
    kind = "wandb-api"
    description = "a run on a W&B server, by URL or entity/project/runs/id (public API, cached)"
    example = "https://wandb.ai/my-team/my-project/runs/abc123xy"
    specificity = 80
    max_confidence = 0.95  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        if target.path is not None:
            return 0.0
        text = target.location.strip()
        if looks_like_run_path(text):
            if "://" in text or "/runs/" in text:
                return 0.95
            # "e/p/id": only when the id looks like a run id, so a mistyped "dir/sub/file.log" is not
            # sent to the network
            last = text.rstrip("/").rsplit("/", 1)[-1]
            return 0.6 if last.replace("-", "").replace("_", "").isalnum() else 0.0
        if text.startswith(("http://", "https://")):
            return 0.5  # a URL but not a run: read() says "not a run URL"
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        location = target.location
        try:
            ref = parse_run_ref(location)
        except NotARunURL as exc:
            raise SourceError(str(exc), location) from None
        from lossdoctor.sources._wandb_cache import RunCache
        from lossdoctor.sources._wandb_fetch import fetch_run

        cache = RunCache(options.cache_dir)
        cached = None if options.refresh else cache.load(ref, location)
        if options.offline:
            if cached is None:
                raise SourceError("run not cached; run once without --offline", location)
            return [_with_note(cached.run, cached.fetched_at)]
        if cached is not None and cached.run.state in ("finished", "crashed", "interrupted"):
            return [_with_note(cached.run, cached.fetched_at)]
        run, complete = fetch_run(ref, location, options, self.kind)
        if complete and not run.metrics.empty:  # only whole, consistent fetches are cached
            cache.store(ref, run)
        return [run]


def _with_note(run: Run, fetched_at: float) -> Run:
    when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(fetched_at)) if fetched_at else "earlier"
    prov = run.provenance
    note = f"read from the local cache (fetched {when}; --refresh to refetch)"
    return Run(
        name=run.name,
        provenance=Provenance(prov.kind, prov.location, prov.step_source, prov.notes + (note,), prov.confidence),
        metrics=run.metrics,
        config=run.config,
        summary=run.summary,
        state=run.state,
        created=run.created,
        tags=run.tags,
    )


SOURCE = WandbApiSource()
