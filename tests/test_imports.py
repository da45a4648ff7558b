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
)


def _state(path: Path, steps: int = 200) -> Path:
    history = []
    for s in range(1, steps + 1):
        history.append({"step": s, "loss": 2.0 / (1 + s / 50) + 0.3, "learning_rate": 1e-4, "grad_norm": 1.0})
        if s % 20 == 0:
            history.append({"step": s, "eval_loss": 1.0 + ((s - steps / 2) / steps) ** 2, "epoch": s / 100})
    path.write_text(json.dumps({"global_step": steps, "max_steps": steps, "log_history": history}))
    return path


def _modules_after(code: str) -> set[str]:
    out = subprocess.run(
        [sys.executable, "-c", code + "\nimport sys\nprint(' '.join(sorted(sys.modules)))"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    return {m.split(".")[0] for m in out.stdout.strip().splitlines()[-1].split()}


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
