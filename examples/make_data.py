"""Make the example chat datasets deterministically (licence-clean: every row is generated here).

    python examples/make_data.py            # writes examples/data/overfit.jsonl and healthy.jsonl

Why two sets: `examples/train_overfit.yaml` trains many epochs on a few rows whose answers are arbitrary
(invented countries → invented capitals), so the model learns the shared template first (eval loss falls)
and then memorises the training answers (train loss → 0) while the held-out answers become less likely
(eval loss rises): classic overfitting. `examples/train_healthy.yaml` makes one pass over many rows of the same
templates, so eval loss keeps falling with train loss. Same seed → byte-identical files.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SEED = 20240601
SYLLABLES = (
    "ba",
    "del",
    "fi",
    "gor",
    "ka",
    "lin",
    "mo",
    "nar",
    "pel",
    "qui",
    "ros",
    "sa",
    "tor",
    "ul",
    "ven",
    "wes",
    "xa",
    "yor",
    "zen",
    "tha",
)
SYSTEM = "You are a concise geography assistant."
QUESTIONS = ("What is the capital of {c}?", "Which city is the capital of {c}?", "Name the capital of {c}.")
ANSWERS = ("The capital of {c} is {k}.", "{k} is the capital of {c}.")


def word(rng: random.Random, parts: int) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


def rows(n: int, seed: int) -> list[dict]:
    """n chat rows: system + user question + assistant answer about an invented country."""
    rng = random.Random(seed)
    seen: set[str] = set()
    out = []
    while len(out) < n:
        country = word(rng, 3)
        if country in seen:
            continue
        seen.add(country)
        capital = word(rng, 2)
        q = rng.choice(QUESTIONS).format(c=country)
        a = rng.choice(ANSWERS).format(c=country, k=capital)
        out.append(
            {
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": q},
                    {"role": "assistant", "content": a},
                ]
            }
        )
    return out


def write(path: Path, data: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="\n") as fh:
        for row in data:
            fh.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")


#: (file name, rows, seed)
DATASETS = (("overfit.jsonl", 40, SEED), ("healthy.jsonl", 800, SEED + 1))


def main(out_dir: Path) -> None:
    for name, n, seed in DATASETS:
        write(out_dir / name, rows(n, seed))
        print(f"wrote {out_dir / name} ({n} rows)")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent / "data")
