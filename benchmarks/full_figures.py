"""The figures of a measured release run, each with its projection to a real release.

A user plans for S = 1.0, so every figure carries how it grows: with the release's rows
(times, disk), with one table's rows (that table's time and size), or not at all
(memory, bounded by batches and PostgreSQL's settings; rates). The projection is the
measured figure times that basis's factor, and the formula says which, so a reader can
check it and a test can too.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

from cnpj_assets.synthetic.scale import REAL_RELEASE_ROWS, REAL_ROWS

RELEASE_BASIS = "release rows"
FIXED_BASIS = "fixed"
SUM_BASIS = "sum"  # a total of other figures, each projected on its own basis
GIB = 1024**3
MIB = 1024**2


def table_basis(table: str) -> str:
    return f"{table} rows"


@dataclass(frozen=True)
class Figure:
    """One measured figure; `unit` is s, bytes or rows/s."""

    name: str
    unit: str
    measured: float
    basis: str
    factor: float
    formula: str
    parts: tuple[str, ...] = ()  # the figures a SUM_BASIS figure adds up

    @property
    def projected(self) -> float:
        return self.measured * self.factor


@dataclass(frozen=True)
class Projection:
    """The factors that take a run of `rows` (loaded, per table) to a real release."""

    rows: dict[str, int]

    @property
    def loaded(self) -> int:
        return sum(self.rows.values())

    def factor(self, basis: str) -> float:
        if basis == FIXED_BASIS:
            return 1.0
        if basis == RELEASE_BASIS:
            return REAL_RELEASE_ROWS / self.loaded
        table = basis.removesuffix(" rows")
        # lookups are written at their real sizes: their factor is 1
        return REAL_ROWS.get(table, self.rows[table]) / self.rows[table]

    def formula(self, basis: str, why_fixed: str) -> str:
        if basis == FIXED_BASIS:
            return f"= measured ({why_fixed})"
        if basis == RELEASE_BASIS:
            return f"x real rows / loaded rows = {REAL_RELEASE_ROWS:,} / {self.loaded:,}"
        table = basis.removesuffix(" rows")
        real = REAL_ROWS.get(table, self.rows[table])
        return f"x real {table} rows / loaded = {real:,} / {self.rows[table]:,}"

    def figure(
        self, name: str, unit: str, measured: float, basis: str, why_fixed: str = ""
    ) -> Figure:
        return Figure(
            name, unit, measured, basis, self.factor(basis), self.formula(basis, why_fixed)
        )

    @staticmethod
    def total(name: str, parts: list[Figure]) -> Figure:
        """A figure made of others that grow differently: their sum, measured and projected."""
        measured = sum(part.measured for part in parts)
        projected = sum(part.projected for part in parts)
        formula = "= " + " + ".join(part.name for part in parts) + ", each projected"
        names = tuple(part.name for part in parts)
        factor = projected / measured if measured else 1.0
        return Figure(name, parts[0].unit, measured, SUM_BASIS, factor, formula, names)


def _show(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:,.1f} s" if value < 600 else f"{value / 60:,.1f} min"
    if unit == "bytes":
        if abs(value) >= GIB:
            return f"{value / GIB:,.2f} GiB"
        return f"{value / MIB:,.0f} MiB" if abs(value) >= MIB else f"{value / 1024:,.0f} KiB"
    return f"{value:,.0f} {unit}"


@dataclass(frozen=True)
class FullRun:
    """A whole-release run: where it ran, what it loaded, and its figures."""

    scale: float
    release: str
    date: str
    cores: int
    memory_bytes: int
    rows: dict[str, int]
    free_disk_drop: int  # the file system's, other processes' writes included: a cross-check
    figures: list[Figure] = field(default_factory=list)

    def figure(self, name: str) -> Figure:
        return next(f for f in self.figures if f.name == name)

    def render(self) -> str:
        width = max(len(f.name) for f in self.figures)
        lines = [
            f"release {self.release} at S = {self.scale}: {sum(self.rows.values()):,} rows loaded; "
            f"{self.cores} cores, {self.memory_bytes / GIB:.0f} GiB of memory; {self.date}",
            f"free disk dropped by {_show(self.free_disk_drop, 'bytes')} at most during the load "
            "(other processes of the machine included)",
            f"{'figure':<{width}}  {'measured':>12}  {'S = 1.0':>12}  projection",
        ]
        lines += [
            f"{f.name:<{width}}  {_show(f.measured, f.unit):>12}  "
            f"{_show(f.projected, f.unit):>12}  {f.formula}"
            for f in self.figures
        ]
        return "\n".join(lines)

    def to_json(self) -> str:
        data = asdict(self)
        for entry, figure in zip(data["figures"], self.figures, strict=True):
            entry["projected"] = figure.projected
        return json.dumps(data, indent=1)
