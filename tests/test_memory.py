"""lossdoctor/memory.py: freed heap handed back to the system between the phases of a large read (glibc), a
no-op elsewhere. What it buys is measured by bench/bench_console_reader.py (peak RSS); here, that it is safe to
call anywhere and that the phases call it."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from lossdoctor import memory


def test_release_is_safe_to_call_any_time() -> None:
    junk = [np.ones(1 << 18) for _ in range(16)]  # 32 MB of scratch, then freed
    del junk
    memory.release()
    memory.release()
    if sys.platform.startswith("linux") and memory._malloc_trim() is None:
        pytest.skip("a Linux without glibc (musl): release() is a no-op there")


def test_streaming_text_releases_every_few_chunks(monkeypatch) -> None:
    import io

    from lossdoctor.sources import text as text_module

    calls: list[int] = []
    monkeypatch.setattr(text_module, "release", lambda: calls.append(1))
    data = b"".join(b"line %d\n" % i for i in range(4000))
    chunks = list(text_module.iter_text_chunks(io.BytesIO(data), "utf-8", chunk_bytes=1024))
    assert "".join(text for text, _, _ in chunks) == data.decode()
    reads = -(-len(data) // 1024) + 1  # every read, the last (empty) one included
    assert len(calls) == reads // text_module.RELEASE_EVERY > 0


def test_a_long_run_releases_after_reading_between_rules_and_before_reports(tmp_path: Path, monkeypatch) -> None:
    import lossdoctor.diagnosis as diagnosis_module
    import lossdoctor.rules.engine as engine_module
    import lossdoctor.sources._registry as registry_module
    from lossdoctor.diagnosis import diagnose
    from lossdoctor.rules.packs import load_rules
    from lossdoctor.sources import read_runs

    calls: list[str] = []
    for module, name in ((registry_module, "read"), (engine_module, "rules"), (diagnosis_module, "diagnose")):
        monkeypatch.setattr(module, "release", lambda name=name: calls.append(name))
    log = tmp_path / "train.log"
    lines = [f"{{'loss': {2.0 - i / 1000:.4f}, 'learning_rate': 1e-05, 'epoch': {i / 100:.2f}}}" for i in range(400)]
    log.write_text("\n".join(lines) + "\n")
    run = read_runs(str(log))[0]
    ruleset = load_rules()
    diagnose(run, ruleset)
    assert calls == ["read", "diagnose"]  # a small run: no release between its rules
    calls.clear()
    monkeypatch.setattr(engine_module, "RELEASE_AFTER_POINTS", 10)  # as if it were a long one
    diagnose(run, ruleset)
    assert calls[-1] == "diagnose" and calls.count("rules") == len(ruleset.rules)
