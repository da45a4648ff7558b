"""The reader registry and detection, for the package (``lossdoctor.sources``) and for the readers that hand
part of their input to the other readers (the W&B offline reader's ``output.log`` fallback, the notebook reader's
cell outputs). Readers import this module, never the package, so no reader imports the package that discovers it.

Every public module of this package that defines a module-level ``SOURCE`` is a reader (lossdoctor/plugins.py);
adding a reader is adding a file. Detection asks the readers to ``sniff`` the target and picks the highest
confidence, ties going to the more specific reader, then to the first kind by name. Each reader declares the
most its sniff returns (``max_confidence``), so detection asks them in order of what they could claim and stops
once none of the rest can beat the best answer so far: a ``trainer_state.json`` is never scanned by the text
sniffers.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lossdoctor.errors import SourceError
from lossdoctor.memory import release
from lossdoctor.metrics.roles import apply_roles
from lossdoctor.model import Run
from lossdoctor.plugins import METHOD, declares, discover
from lossdoctor.sources.base import HEAD_BYTES, ReadOptions, Source, Target

MIN_CONFIDENCE = 0.2


@lru_cache(maxsize=1)
def registry() -> dict[str, Source]:
    """kind → reader, discovered from the modules of this package (sorted by kind)."""
    return discover(
        "lossdoctor.sources",
        "SOURCE",
        "readers",
        lambda source: (source.kind,),
        validate=declares(
            "reader",
            kind=str,
            description=str,
            example=str,
            specificity=int,
            max_confidence=float,
            sniff=METHOD,
            read=METHOD,
        ),
    )


def kinds_text() -> str:
    return ", ".join(registry())


def _looks_like_url(location: str) -> bool:
    return "://" in location


def make_target(location: str) -> Target:
    if _looks_like_url(location):
        return Target(location=location, path=None)
    path = Path(location)
    if path.is_dir():
        return Target(location=location, path=path, is_dir=True)
    if path.is_file():
        try:
            with path.open("rb") as fh:
                head = fh.read(HEAD_BYTES)
        except OSError as exc:
            raise SourceError(f"cannot read: {exc.strerror}", location) from None
        return Target(location=location, path=path, head=head)
    if path.exists():
        raise SourceError("not a regular file or directory", location)
    # not a local path: maybe a W&B path like entity/project/runs/id
    return Target(location=location, path=None)


@lru_cache(maxsize=1)
def _by_claim() -> tuple[Source, ...]:
    """The readers in the order detection asks them: what they could claim, then specificity, then kind."""
    return tuple(sorted(registry().values(), key=lambda s: (-s.max_confidence, -s.specificity, s.kind)))


def detect(target: Target, skip: frozenset[str] = frozenset()) -> tuple[Source, float]:
    """The reader that claims the target most confidently (a sniff above its reader's declared
    ``max_confidence`` counts as that maximum); readers whose kind is in ``skip`` are not asked."""
    best: tuple[float, int, str, Source] | None = None
    for source in _by_claim():
        if source.kind in skip:
            continue
        if best is not None and (source.max_confidence, source.specificity) < best[:2]:
            break  # neither this reader nor any after it can win
        try:
            score = min(float(source.sniff(target)), source.max_confidence)
        except Exception:  # a sniffer must never take detection down  # noqa: BLE001
            score = 0.0
        if score > 0 and (best is None or (-score, -source.specificity, source.kind) < (-best[0], -best[1], best[2])):
            best = (score, source.specificity, source.kind, source)
    if best is None or best[0] < MIN_CONFIDENCE:
        raise SourceError(_unknown_message(target), target.location)
    return best[3], best[0]


def _unknown_message(target: Target) -> str:
    if target.path is None:
        what = "no such file or directory, and not a W&B run URL or path"
        return f"{what}; lossdoctor reads: {kinds_text()}"
    if target.is_file and not target.head:
        return f"empty file; expected a training log or metrics file ({kinds_text()})"
    from lossdoctor.sources.text import looks_binary

    if target.is_file and looks_binary(target.head):
        return f"binary file, not a training log; lossdoctor reads: {kinds_text()}"
    return f"no training metrics recognised; lossdoctor reads: {kinds_text()} (use --source-kind to force one)"


#: files in a directory that are never the run itself (labels, notes, manifests)
_DIR_SKIP_SUFFIXES = (".md", ".yaml", ".yml", ".txt.sha256")


def _detect_in_dir(target: Target) -> tuple[Target, Source]:
    """No reader claims the directory as a whole: pick the one file in it that a reader claims most
    confidently (e.g. a run dir holding just ``train.log``). Ties between different files are an error."""
    assert target.path is not None
    best: list[tuple[float, int, str, Target, Source]] = []
    for path in sorted(p for p in target.path.iterdir() if p.is_file() and not p.name.startswith(".")):
        if path.name.lower().endswith(_DIR_SKIP_SUFFIXES):
            continue
        try:
            sub = make_target(str(path))
            source, score = detect(sub)
        except SourceError:
            continue
        best.append((score, source.specificity, path.name, sub, source))
    if not best:
        raise SourceError(_unknown_message(target), target.location)
    best.sort(key=lambda t: (-t[0], -t[1], t[2]))
    if len(best) > 1 and best[0][:2] == best[1][:2]:
        raise SourceError(
            f"several files could be the run ({best[0][2]}, {best[1][2]}); name the file to read", target.location
        )
    return best[0][3], best[0][4]


def read_runs(location: str, options: ReadOptions | None = None) -> list[Run]:
    """Read one location (file, dir, URL) into one or more runs."""
    options = options or ReadOptions()
    target = make_target(location)
    if options.source_kind:
        source = registry().get(options.source_kind)
        if source is None:
            raise SourceError(f"unknown --source-kind {options.source_kind!r}; kinds: {kinds_text()}", location)
        if target.path is None and not _looks_like_url(location) and not source.sniff(target):
            raise SourceError("no such file or directory", location)
    else:
        try:
            source, _ = detect(target)
        except SourceError:
            if not target.is_dir:
                raise
            target, source = _detect_in_dir(target)
    runs = source.read(target, options)
    release()  # the reader's temporaries freed: the rules start from a trimmed heap (lossdoctor/memory.py)
    if not runs:
        raise SourceError(f"no runs found by the {source.kind} reader", location)
    for run in runs:
        if run.metrics.empty:
            raise SourceError(f"no training metrics found ({source.kind}: {source.description})", location)

    return [apply_roles(run, options.metric_roles) for run in runs]


def read_text_runs(
    text: str, location: str, options: ReadOptions | None = None, skip_kinds: frozenset[str] = frozenset()
) -> list[Run]:
    """Runs from text held in memory (a notebook cell's stream output, a pasted console): the same detection
    and readers as for a file holding that text, so every text reader (and any added later) applies.

    ``location`` names where the text came from (``nb.ipynb#cell-12``); it replaces the scratch file's path in
    the runs and in errors. Returns [] when no reader claims the text (or the one that does is in
    ``skip_kinds``); a claiming reader's SourceError is raised with ``location``.
    Why a scratch file: the readers stream from a path (the console reader reads 4 MiB chunks); one private
    temporary file (mkstemp, removed afterwards) keeps them all unchanged.
    """
    import os
    import re
    import tempfile
    from dataclasses import replace

    if not re.search(r"\d", text):
        return []  # no number, no metric
    fd, name = tempfile.mkstemp(prefix="lossdoctor-text-", suffix=".log")
    path = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(text.encode("utf-8", errors="surrogateescape"))
        target = make_target(str(path))
        try:
            source, _ = detect(target)
        except SourceError:
            return []
        if source.kind in skip_kinds:
            return []
        try:
            runs = source.read(target, options or ReadOptions())
        except SourceError as exc:
            raise SourceError(exc.message.replace(str(path), location), location, exc.line, exc.column) from None
    finally:
        path.unlink(missing_ok=True)

    return [
        apply_roles(
            replace(
                run,
                name=location,
                provenance=replace(
                    run.provenance,
                    location=location,
                    notes=tuple(n.replace(str(path), location) for n in run.provenance.notes),
                ),
            ),
            (options or ReadOptions()).metric_roles,
        )
        for run in runs
        if not run.metrics.empty
    ]
