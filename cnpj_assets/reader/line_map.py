"""Map loaded rows and rejected records back to physical lines of the CSV member.

DuckDB streams good rows in file order but gives them no line number, and reports
rejects only once the scan is over, numbered as records (a blank line is one record, a
quoted field spanning lines is not a new one). Three sparse lists are enough to place
everything exactly: the physical lines of blank lines (from a byte scan), the record
numbers and newline counts of rejects (from DuckDB), and the good rows whose quoted
fields hold newlines (from a second DuckDB pass); the first and last are looked for only
in a file whose line count says it has some. Between two such events every record is a
good one-line row, so rows, records and lines advance together; the walk below jumps
from event to event and remembers a breakpoint after each.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass


@dataclass(frozen=True)
class RejectPosition:
    record: int  # DuckDB's 1-based record number
    newlines: int  # newlines inside the rejected record


class LineMap:
    """Physical line of every good row and reject; also the total lines accounted for."""

    def __init__(
        self,
        total_rows: int,
        blank_lines: list[int],
        rejects: list[RejectPosition],
        multiline_rows: dict[int, int],
        header_lines: int = 0,
    ) -> None:
        self._multiline_rows = multiline_rows
        self._first = 1 + header_lines  # DuckDB numbers a header as record 1 too
        self._row_breaks: list[int] = [0]  # good-row ordinal where a linear segment starts
        self._line_breaks: list[int] = [self._first]  # physical line of that row
        self.reject_lines: dict[int, int] = {}
        self.lines_accounted = self._walk(
            total_rows,
            sorted(blank_lines),
            sorted(rejects, key=lambda r: r.record),
            sorted(multiline_rows),
        )

    def _walk(
        self,
        total_rows: int,
        blanks: list[int],
        rejects: list[RejectPosition],
        wide_rows: list[int],
    ) -> int:
        record, line, row = self._first, self._first, 0
        b = r = w = 0
        while True:
            distances = []
            if b < len(blanks):
                distances.append(blanks[b] - line)
            if r < len(rejects):
                distances.append(rejects[r].record - record)
            if w < len(wide_rows):
                distances.append(wide_rows[w] - row)
            if not distances:
                return line - 1 + (total_rows - row)
            step = max(0, min(distances))
            record, line, row = record + step, line + step, row + step
            if b < len(blanks) and blanks[b] == line:
                record, line, b = record + 1, line + 1, b + 1
            elif r < len(rejects) and rejects[r].record == record:
                self.reject_lines[rejects[r].record] = line
                record, line, r = record + 1, line + 1 + rejects[r].newlines, r + 1
            elif w < len(wide_rows) and wide_rows[w] == row:
                record, line, row = record + 1, line + 1 + self._multiline_rows[row], row + 1
                w += 1
            else:
                raise ValueError("inconsistent line events: blank, reject and rows overlap")
            self._row_breaks.append(row)
            self._line_breaks.append(line)

    def first_line(self, row: int) -> int:
        """Physical line where good row `row` (0-based ordinal) starts."""
        segment = bisect.bisect_right(self._row_breaks, row) - 1
        return self._line_breaks[segment] + (row - self._row_breaks[segment])

    def last_line(self, row: int) -> int:
        """Physical line where good row `row` ends (later than its first if multiline)."""
        return self.first_line(row) + self._multiline_rows.get(row, 0)
