"""Make the console-log fixtures in this directory.

    /work/venv/bin/python tests/data/console/make_variants.py            # rewrite the variants
    /work/venv/bin/python tests/data/console/make_variants.py --cut SEED # also re-cut seed001_console.log

seed001_console.log is the console block of /work/shared/seeds/001_*.repaired.txt (the lines between
``<pre>`` and ``</pre>`` of step 7, 7-space indentation removed, U+FFFD characters kept). The variants are
derived from it by formula, so the tests know their expected values without reading them back:

- seed001_crlf.log: the same bytes with every line ending CRLF (a Windows console saved as-is);
- seed001_tf5.log:  every number inside a log dict printed the transformers-5 way, as the string
  ``f"{value:.4g}"`` (``{'loss': '2.751', ...}``).
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED_LOG = HERE / "seed001_console.log"
_NUM = re.compile(r"(?<=': )(-?(?:\d+\.?\d*(?:e[-+]?\d+)?|nan|inf))(?=[,}])")


def cut(seed: Path) -> str:
    lines = seed.read_text(encoding="utf-8").splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "<pre>" and "(.venv)" in lines[i + 1])
    end = next(i for i in range(start, len(lines)) if lines[i].strip() == "</pre>")
    return "".join(line[7:] + "\n" if line.startswith("       ") else line.strip() + "\n"
                   for line in lines[start + 1:end])


def tf5(text: str) -> str:
    """Numbers inside {'...': ...} dicts become '.4g' strings (what transformers 5 prints)."""
    out = []
    for line in text.splitlines(keepends=True):
        if "{'" in line:
            line = _NUM.sub(lambda m: "'" + format(float(m.group(1)), ".4g") + "'", line)
        out.append(line)
    return "".join(out)


def main(argv: list[str]) -> None:
    if len(argv) == 2 and argv[0] == "--cut":
        SEED_LOG.write_text(cut(Path(argv[1])), encoding="utf-8", newline="\n")
    text = SEED_LOG.read_text(encoding="utf-8")
    (HERE / "seed001_crlf.log").write_bytes(text.replace("\n", "\r\n").encode("utf-8"))
    (HERE / "seed001_tf5.log").write_text(tf5(text), encoding="utf-8", newline="\n")


if __name__ == "__main__":
    main(sys.argv[1:])
