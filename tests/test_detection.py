"""Detection asks the readers in order of what they could claim and stops once none of the rest can win
(lossdoctor/sources/_registry.py). That shortcut is only right if no reader's sniff ever claims more than its
declared ``max_confidence``, and if it picks what asking every reader would: both checked on every file and
directory the tests read (real tool output and public logs)."""

from __future__ import annotations

from pathlib import Path

from lossdoctor.errors import SourceError
from lossdoctor.sources import _registry
from lossdoctor.sources._registry import MIN_CONFIDENCE, detect, make_target, registry

TESTS = Path(__file__).resolve().parent
SKIP_SUFFIXES = (".md", ".py", ".yaml", ".yml", ".sha256", ".json.gz")


def _inputs() -> list[Path]:
    roots = [TESTS / "data", TESTS / "corpus", TESTS / "corpus-public", TESTS / "scenarios", TESTS / "cases"]
    found: set[Path] = set()
    for root in roots:
        if not root.is_dir():
            continue
        for path in root.rglob("*"):
            if path.name.startswith(".") or path.name.endswith(SKIP_SUFFIXES):
                continue
            found.add(path)
    return sorted(found)


def _exhaustive(target) -> tuple[str, float] | None:
    """Every reader asked: the highest confidence, then the more specific reader, then the first kind."""
    scored = []
    for kind, source in registry().items():
        try:
            score = float(source.sniff(target))
        except Exception:  # noqa: BLE001
            score = 0.0
        if score > 0:
            scored.append((-score, -source.specificity, kind))
    if not scored:
        return None
    best = min(scored)
    return (best[2], -best[0]) if -best[0] >= MIN_CONFIDENCE else None


def test_the_inputs_cover_files_and_directories() -> None:
    inputs = _inputs()
    assert len(inputs) > 300
    assert any(p.is_dir() for p in inputs) and any(p.suffix == ".ipynb" for p in inputs)


def test_no_reader_claims_more_than_it_declares_and_detection_agrees_with_asking_everyone() -> None:
    mismatches, over = [], []
    for path in _inputs():
        target = make_target(str(path))
        for kind, source in registry().items():
            try:
                score = float(source.sniff(target))
            except Exception:  # noqa: BLE001
                continue
            if not 0.0 <= score <= source.max_confidence:
                over.append((str(path.relative_to(TESTS)), kind, score, source.max_confidence))
        want = _exhaustive(target)
        try:
            source, score = detect(target)
            got: tuple[str, float] | None = (source.kind, score)
        except SourceError:
            got = None
        if got != want:
            mismatches.append((str(path.relative_to(TESTS)), got, want))
    assert not over, over[:10]
    assert not mismatches, mismatches[:10]


def test_detection_stops_asking_once_nothing_left_can_win(tmp_path: Path, monkeypatch) -> None:
    state = tmp_path / "trainer_state.json"
    state.write_text('{"global_step": 2, "log_history": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]}')
    asked: list[str] = []
    for source in registry().values():
        sniff = type(source).sniff

        def spy(self, target, _sniff=sniff):
            asked.append(self.kind)
            return _sniff(self, target)

        monkeypatch.setattr(type(source), "sniff", spy)
    source, score = detect(make_target(str(state)))
    assert (source.kind, score) == ("trainer-state", 0.9)
    # every reader that could claim more than 0.9 was asked; none that could only claim less was
    could_win = {s.kind for s in registry().values() if s.max_confidence > 0.9}
    assert could_win <= set(asked)
    assert not {s.kind for s in registry().values() if s.max_confidence < 0.9} & set(asked)


def test_skipped_kinds_are_not_asked(tmp_path: Path) -> None:
    """(The W&B reader's output.log fallback skips itself this way.) A one-line JSON object is also a JSON-lines
    file: without the trainer-state reader, the JSON-lines reader takes it."""
    state = tmp_path / "trainer_state.json"
    state.write_text('{"global_step": 2, "log_history": [{"step": 1, "loss": 2.0}, {"step": 2, "loss": 1.5}]}')
    assert detect(make_target(str(state)))[0].kind == "trainer-state"
    assert detect(make_target(str(state)), skip=frozenset({"trainer-state"}))[0].kind == "jsonl"


def test_the_order_detection_asks_in_is_by_claim_then_specificity_then_kind() -> None:
    order = [(s.max_confidence, s.specificity, s.kind) for s in _registry._by_claim()]
    assert order == sorted(order, key=lambda t: (-t[0], -t[1], t[2]))
    assert len(order) == len(registry())
