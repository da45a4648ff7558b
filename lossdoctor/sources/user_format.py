"""Lines in a user-defined format (``--log-format FILE``, see lossdoctor/sources/_logformat.py).

A sniffer sees only the target, not the options, so this reader never claims a file by detection
(sniff = 0). It is chosen explicitly: ``analyze --log-format F`` sets ``source_kind="user-format"``
(or pass ``--source-kind user-format --log-format F``).

Each line is searched with the pattern; a line where it matches twice, or where a metric group matched
text that is not a number (typically a greedy group that swallowed a second, glued record), is dropped
whole and counted — never turned into a partial point. ``[rankN]:`` prefixes set the rank, or a named group ``rank`` in the pattern does;
duplicates keep rank 0, then the first.
"""

from __future__ import annotations

from lossdoctor.errors import SourceError
from lossdoctor.model import Run
from lossdoctor.sources._logformat import load_log_format
from lossdoctor.sources._readkit import (
    MAX_LINE_CHARS,
    Collector,
    iter_lines,
    make_run,
    parse_number,
    read_text,
    split_rank,
)
from lossdoctor.sources.base import ReadOptions, Target


class UserFormatSource:
    kind = "user-format"
    description = "lines matching your --log-format FILE (YAML: pattern with named groups, step, metrics)"
    example = "lossdoctor analyze train.log --log-format myformat.yaml"
    specificity = 0
    max_confidence = 0.0  # the most sniff() returns (detection skips what cannot win)

    def sniff(self, target: Target) -> float:
        return 0.0

    def read(self, target: Target, options: ReadOptions) -> list[Run]:
        if not options.log_format:
            raise SourceError("the user-format reader needs --log-format FILE (a YAML line format)", target.location)
        fmt = load_log_format(options.log_format)
        text, notes = read_text(target)
        points = Collector()
        bad_steps = 0
        has_rank_group = "rank" in fmt.pattern.groupindex
        for lineno, line in iter_lines(text):
            if len(line) > MAX_LINE_CHARS:
                points.long_lines += 1
                continue
            matches = list(fmt.pattern.finditer(line))
            if not matches:
                continue
            if len(matches) > 1:
                points.glued_lines.append(lineno)
                continue
            m = matches[0]
            rank, _ = split_rank(line)
            if has_rank_group and m.group("rank") is not None and m.group("rank").strip().isdigit():
                rank = int(m.group("rank"))
            step_text = m.group(fmt.step_group)
            step_value = parse_number(step_text) if step_text is not None else None
            if step_value is None:  # NaN / fractional / huge steps: dropped and counted by the tidy table
                bad_steps += 1
                continue
            values = [(group, metric, m.group(group)) for group, metric in fmt.metrics if m.group(group) is not None]
            parsed = [
                (group, metric, number) for group, metric, raw in values if (number := parse_number(raw)) is not None
            ]
            if len(parsed) < len(values):
                # a group that matched but holds no number: often a second record glued on (greedy \S+);
                # keeping the line's other values could pair them with the wrong step
                points.glued_lines.append(lineno)
                continue
            for group, metric, value in parsed:
                points.add(
                    step_value,
                    group,
                    value,
                    rank=rank,
                    metric=metric,
                    line=lineno,
                )
        frame, more = points.frame()
        if bad_steps:
            more.append(f"{bad_steps} matching line(s) skipped: step group {fmt.step_group!r} held no number")
        if frame.empty:
            raise SourceError(
                f"no line matched the pattern of {fmt.path} with a numeric step and metric", target.location
            )
        notes = [f"format {fmt.name!r} from {fmt.path}"] + notes + more
        return [make_run(target, self.kind, frame, notes)]


SOURCE = UserFormatSource()
