"""Pay only for what a command uses (issue 13): which modules an analysis imports is behaviour, checked here in a
fresh interpreter. (How long imports take is a benchmark, bench/bench_imports.py, never a timed test.)"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

#: never needed to analyse a trainer_state.json: the tidy table is numpy, W&B modules (and the HTTP stack the W&B
#: client of lossdoctor opens connections with) are for W&B sources, plots are drawn as SVG, and jinja2 is the
#: HTML template engine only
HEAVY = (
    "pandas",
    "pyarrow",
    "wandb",
    "torch",
    "transformers",
    "matplotlib",
    "scipy",
    "http.client",
    "ssl",
    "lossdoctor.sources._wandb_fetch",
    "yaml",  # the package's own data files are read from their snapshot (lossdoctor/datafiles.py)
)


def _state(path: Path, steps: int = 200) -> Path:
    history = []
    for s in range(1, steps + 1):
        history.append({"step": s, "loss": 2.0 / (1 + s / 50) + 0.3, "learning_rate": 1e-4, "grad_norm": 1.0})
        if s % 20 == 0:
            history.append({"step": s, "eval_loss": 1.0 + ((s - steps / 2) / steps) ** 2, "epoch": s / 100})
    path.write_text(json.dumps({"global_step": steps, "max_steps": steps, "log_history": history}))
    return path


def _modules_after(code: str, top_level: bool = True) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    names = out.stdout.strip().splitlines()[-1].split()
    return {m.split(".")[0] for m in names} if top_level else set(names)


@pytest.mark.parametrize("formats, also_absent", [("json", ("jinja2",)), ("html,md", ())])
def test_analyze_of_a_trainer_state_imports_no_heavy_stack(
    tmp_path: Path, formats: str, also_absent: tuple[str, ...]
) -> None:
    state = _state(tmp_path / "trainer_state.json")
    code = (
        f"import sys\nfrom lossdoctor.cli import main\n"
        f"sys.argv = ['lossdoctor', 'analyze', {str(state)!r}, '--format', {formats!r}, '--out', "
        f"{str(tmp_path / 'out')!r}, '-q']\n"
        f"try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, 1), exc.code\n"
    )
    loaded = _modules_after(code)
    assert "lossdoctor" in loaded and "numpy" in loaded
    assert not loaded & set(HEAVY + also_absent), sorted(loaded & set(HEAVY + also_absent))
    assert (tmp_path / "out").is_dir()


def test_analyze_loads_only_its_own_command_and_the_formats_it_writes(tmp_path: Path) -> None:
    state = _state(tmp_path / "trainer_state.json")
    code = (
        f"import sys\nfrom lossdoctor.cli import main\n"
        f"sys.argv = ['lossdoctor', 'analyze', {str(state)!r}, '--format', 'json', '--out', "
        f"{str(tmp_path / 'out')!r}, '-q']\n"
        f"try:\n    main()\nexcept SystemExit as exc:\n    assert exc.code in (0, 1), exc.code\n"
    )
    loaded = _modules_after(code, top_level=False)
    assert "lossdoctor.commands.analyze" in loaded and "lossdoctor.report.formats.json" in loaded
    unwanted = {
        "lossdoctor.commands.train",
        "lossdoctor.commands.compare",
        "lossdoctor.train.config",
        "lossdoctor.report.formats.html",
        "lossdoctor.report.formats.sarif",
        "lossdoctor.report.formats.junit",
        "lossdoctor.triage",  # a file is one run: no project listing, no directory of runs
    }
    assert not loaded & unwanted, sorted(loaded & unwanted)


def test_public_api_analysis_without_pandas_and_its_frame_view_with_it(tmp_path: Path) -> None:
    state = _state(tmp_path / "trainer_state.json")
    loaded = _modules_after(
        f"import lossdoctor\nrun = lossdoctor.load_run({str(state)!r})\n"
        f"d = lossdoctor.analyze(run)\nassert run.series('train/loss').size == 200\n"
    )
    assert "pandas" not in loaded and "wandb" not in loaded
    # the frame view is there for whoever asks (pandas imported then)
    import lossdoctor

    run = lossdoctor.load_run(str(state))
    frame = run.frame()
    assert list(frame.columns[:4]) == ["step", "metric", "value", "raw_name"]
    assert str(frame["metric"].dtype) == "category" and frame["step"].dtype == "int64"
    assert len(frame) == run.n_points
    series = run.series("eval/loss").to_pandas()
    assert series.index.name == "step" and series.to_dict() == run.series("eval/loss").to_dict()


@pytest.mark.parametrize("given, expected", [(None, "1"), ("4", "4")])
def test_the_cli_keeps_numpy_from_starting_blas_threads_unless_told(monkeypatch, capsys, given, expected) -> None:
    """numpy starts one BLAS thread per core on import, CPU lossdoctor's element-wise work never uses: the CLI
    asks for one thread before numpy loads, keeping a value the user set."""
    import os

    from lossdoctor.cli import main

    if given is None:
        monkeypatch.delenv("OPENBLAS_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OPENBLAS_NUM_THREADS", given)
    with pytest.raises(SystemExit) as exc:
        main(["sources"])
    assert exc.value.code == 0 and "trainer-state" in capsys.readouterr().out
    assert os.environ["OPENBLAS_NUM_THREADS"] == expected


def test_the_executable_tunes_the_collector_for_its_one_command(monkeypatch, capsys) -> None:
    """``lossdoctor`` (``cli.run``) makes cyclic collections rarer for the command and freezes what survives for
    the exit; ``cli.main``, which in-process callers use, leaves their collector alone."""
    import gc

    from lossdoctor import cli

    saved = gc.get_threshold()
    try:
        gc.set_threshold(700, 10, 10)
        with pytest.raises(SystemExit):
            cli.main(["sources"])
        assert gc.get_threshold() == (700, 10, 10)
        frozen = gc.get_freeze_count()
        with pytest.raises(SystemExit) as exc:
            cli.run(["sources"])
        assert exc.value.code == 0 and "trainer-state" in capsys.readouterr().out
        assert gc.get_threshold() == cli._GC_THRESHOLDS and gc.get_freeze_count() > frozen
    finally:
        gc.set_threshold(*saved)
        gc.unfreeze()
