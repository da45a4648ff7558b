"""Console-log test kit: random HF console logs, and a scan's result as plain values to compare two scans."""

from __future__ import annotations

import random


def scan_fields(scan) -> dict[str, object]:
    """Everything a scan gives, as plain values (NaN-safe: floats by repr)."""
    groups = {}
    for keys, group in scan.groups.items():
        idx, vals, ok = group.table()
        groups[keys] = (group.kind, idx.tolist(), [repr(x) for x in vals.ravel().tolist()], ok.tolist())
    return {
        "group_order": list(scan.groups),
        "groups": groups,
        "kind": scan.kind.tolist(),
        "after_n": scan.after_n.tolist(),
        "after_total": scan.after_total.tolist(),
        "meta": (scan.run_name, scan.replacement_chars, scan.bytes_read),
    }


def random_console(rng: random.Random, lines: int) -> bytes:
    """A console log of random lines: dicts in both quotings (nan, inf, -0.0, a value that is no number),
    bars glued before dicts or redrawn with CR and cursor-up, a bar or braces cut into a printed value, eval
    dicts, summaries, W&B run names, long lines, a broken dict, CRLF here and there; maybe no final line
    break, undecodable bytes, a BOM."""
    out, step, total = [], 0, rng.choice([100, 1000, 99999])
    for _ in range(lines):
        r, nl = rng.random(), "\r\n" if rng.random() < 0.1 else "\n"
        redraw = rng.choice(["", "\r", "\x1b[A\r"])
        bar = f"{redraw} {rng.randint(0, 99):2d}%|##  | {step}/{total} [00:01<00:02, 4.77it/s]"
        if r < 0.35:
            step += rng.randint(0, 2)
            value = rng.choice(["'1.5'", "'nan'", "2.25", "'inf'", "nan", "'x'", "1e-05", "'-0.0'"])
            d = f"{{'loss': {value}, 'grad_norm': '{rng.random():.4g}', 'epoch': '{step / 100:.4g}'}}"
            out.append((bar + "\r     \r" if rng.random() < 0.3 else "") + d + nl)
            if rng.random() < 0.7:
                out.append(bar + nl)
        elif r < 0.45:
            out.append(f"{{'eval_loss': '{rng.random():.4g}', 'eval_runtime': '1.5', 'epoch': '{step / 100:.4g}'}}{nl}")
        elif r < 0.5:
            out.append(bar * rng.randint(1, 4) + nl)
        elif r < 0.55:
            out.append("warning: {'not': 'a dict'} here" + nl)
        elif r < 0.58:
            out.append(f"wandb: Syncing run run-{rng.randint(0, 9)}{nl}")
        elif r < 0.6:
            out.append("x" * rng.randint(1000, 9000) + nl)
        elif r < 0.61:
            out.append("{'loss': '1.0', 'grad_norm': broken" + nl)
        elif r < 0.62:  # stderr's bar redraw inside a buffered stdout dict; braces inside a value
            cut_in = rng.choice([bar, "{x}", "\r"])
            out.append(f"{{'loss': '1.5', 'grad_norm': '0.5{cut_in}', 'epoch': '{step / 100:.4g}'}}{nl}")
        elif r < 0.64:
            out.append("{'train_runtime': '12.5', 'train_loss': '2.1', 'epoch': '3'}" + nl)
        else:
            out.append(bar + nl)
    text = "".join(out)
    data = (text.rstrip("\n") if rng.random() < 0.3 else text).encode("utf-8")
    if rng.random() < 0.3:
        at = rng.randrange(len(data))
        data = data[:at] + b"\xff\xfe" + data[at:]
    return (b"\xef\xbb\xbf" if rng.random() < 0.2 else b"") + data
