"""The HTML outputs of a notebook cell (the notebook reader's tables and progress bars), parsed with the
standard library's HTMLParser: imported only when a notebook holds an HTML table, so detecting a reader for
any other file does not pay for ``html.parser``."""

from __future__ import annotations

from dataclasses import dataclass, field
from html.parser import HTMLParser


@dataclass
class HtmlTable:
    head: list[list[str]] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)


class HtmlScan(HTMLParser):
    """One text/html output: its first ``<progress>`` (value, max and the label text after it) and every
    top-level ``<table>`` (header rows and body rows, as cell texts)."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.progress: tuple[str | None, str | None] | None = None
        self.label: list[str] = []
        self.tables: list[HtmlTable] = []
        self._in_label = False
        self._depth = 0
        self._row: list[str] | None = None
        self._row_all_th = True
        self._in_thead = False
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "progress" and self.progress is None:
            a = dict(attrs)
            self.progress = (a.get("value"), a.get("max"))
            self._in_label = True
        elif tag == "table":
            self._in_label = False
            self._depth += 1
            if self._depth == 1:
                self.tables.append(HtmlTable())
        elif self._depth == 1:
            if tag == "thead":
                self._in_thead = True
            elif tag == "tr":
                self._row, self._row_all_th = [], True
            elif tag in ("td", "th") and self._row is not None:
                self._cell = []
                self._row_all_th &= tag == "th"

    def handle_endtag(self, tag: str) -> None:
        if tag == "table":
            self._depth = max(0, self._depth - 1)
            self._row = self._cell = None
        elif self._depth == 1:
            if tag in ("td", "th") and self._cell is not None and self._row is not None:
                self._row.append(" ".join("".join(self._cell).split()))
                self._cell = None
            elif tag == "tr" and self._row is not None:
                table = self.tables[-1]
                if (self._in_thead or (self._row_all_th and not table.rows)) and self._row:
                    table.head.append(self._row)
                else:
                    table.rows.append(self._row)
                self._row = None
            elif tag == "thead":
                self._in_thead = False
        elif tag == "div" and self._in_label and self.label:
            self._in_label = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)
        elif self._in_label and self._depth == 0:
            self.label.append(data)
