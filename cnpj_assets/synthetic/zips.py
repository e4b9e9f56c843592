"""One zip of a synthetic release, written from the release's plan alone.

Each zip depends only on the plan (size, seed, date, quirks) and its own name: its
records come from a generator seeded per file and from `Companies`, which computes
every company from its index. So the zips can be written in any order, by any process,
and come out byte for byte the same.
"""

from __future__ import annotations

import datetime as dt
import itertools
import random
from dataclasses import dataclass, field
from pathlib import Path

from cnpj_assets.specs import TABLES, TableSpec
from cnpj_assets.synthetic.companies import Companies
from cnpj_assets.synthetic.csvformat import join_record
from cnpj_assets.synthetic.lookups import build_lookups
from cnpj_assets.synthetic.quirks import (
    BLANK_LAST_LINE,
    LOADED,
    Quirk,
    apply,
    place,
    quirks_of_file,
)
from cnpj_assets.synthetic.report import FileReport, QuirkEntry
from cnpj_assets.synthetic.rows import BUILDERS
from cnpj_assets.synthetic.values import build_pools
from cnpj_assets.synthetic.writer import MemberWriter, zip_member

ORPHANS_PER_COMPANY = 1 / 500  # establishments whose company is missing from empresas


def member_date(day: dt.date) -> str:
    """yMMdd: one-digit year, month, day (2026-10-12 -> 61012)."""
    return f"{day.year % 10}{day.month:02d}{day.day:02d}"


@dataclass(frozen=True)
class ReleasePlan:
    """What every zip of a release is made from; small and picklable, for worker processes."""

    rows: int
    seed: int
    day: dt.date
    quirks: bool

    def companies(self) -> Companies:
        orphans = max(1, int(self.rows * ORPHANS_PER_COMPANY)) if self.rows else 0
        return Companies(self.seed, self.rows, orphans)


@dataclass(frozen=True)
class ZipTask:
    """One zip to write: its table and file number."""

    table: str
    number: int
    zip_name: str


def release_zips() -> tuple[ZipTask, ...]:
    """The 37 zips of a release, in the order the report lists them."""
    return tuple(
        ZipTask(spec.name, number, zip_name)
        for spec in TABLES.values()
        for number, zip_name in enumerate(spec.zip_names())
    )


@dataclass(frozen=True)
class WrittenZip:
    """A zip on disk: its report line and the quirks planted in it, in line order."""

    file: FileReport
    quirks: tuple[QuirkEntry, ...] = ()


@dataclass
class _FileQuirks:
    """Collects the report entries of the quirks one file receives."""

    spec: TableSpec
    zip_name: str
    member: str
    entries: list[QuirkEntry] = field(default_factory=list)

    def planted(self, line: int, quirk: Quirk, fields: list[str]) -> None:
        columns = self.spec.column_names

        def value(name: str) -> str | None:
            return fields[columns.index(name)] if name in columns else None

        self.entries.append(
            QuirkEntry(
                self.zip_name,
                self.member,
                self.spec.name,
                line,
                quirk.kind,
                quirk.expected,
                cnpj_basico=value("cnpj_basico"),
                cnpj_ordem=value("cnpj_ordem"),
                cnpj_dv=value("cnpj_dv"),
                codigo=value("codigo"),
                column=quirk.column,
                value=quirk.value,
            )
        )

    def blank_line(self, line: int) -> None:
        entry = QuirkEntry(
            self.zip_name, self.member, self.spec.name, line, BLANK_LAST_LINE, LOADED
        )
        self.entries.append(entry)


class ZipWriter:
    """Writes any zip of one release; builds the release's pools and companies once."""

    def __init__(self, plan: ReleasePlan) -> None:
        self.plan = plan
        self.lookups = build_lookups()
        self.pools = build_pools(plan.seed, self.lookups, plan.day)
        self.companies = plan.companies()

    def write(self, folder: Path, task: ZipTask) -> WrittenZip:
        spec = TABLES[task.table]
        member = spec.member_name(task.number, member_date(self.plan.day))
        timestamp = dt.datetime.combine(self.plan.day, dt.time())
        quirks = _FileQuirks(spec, task.zip_name, member)
        with zip_member(folder / task.zip_name, member, timestamp) as writer:
            if spec.is_lookup:
                writer.write([join_record(row) for row in self.lookups.rows[spec.name]])
            else:
                self._write_facts(writer, spec, task.number, quirks)
        report = FileReport(task.zip_name, spec.name, member, writer.records, writer.physical_lines)
        return WrittenZip(report, tuple(quirks.entries))

    def _write_facts(
        self, writer: MemberWriter, spec: TableSpec, number: int, quirks: _FileQuirks
    ) -> None:
        companies = self.companies
        owned = companies.file_ranges()[number] if spec.file_count > 1 else range(companies.rows)
        orphans = companies.orphans_of_file(number) if spec.name == "estabelecimentos" else ()
        rng = random.Random(f"{self.plan.seed}/{spec.name}/{number}")
        source = BUILDERS[spec.name](companies, self.pools, rng)
        planted = quirks_of_file(spec.name, number) if self.plan.quirks else ()
        targets = place(planted, owned)
        for index in itertools.chain(owned, orphans):
            quirk = targets.get(index)
            # the first company of a file always has a record, so no file is empty
            records = source.records(index, quirk is not None or index == owned.start)
            if quirk is None:
                writer.write(records)
                continue
            for record in apply(quirk, spec, records):
                line = writer.write_one(record.text)
                if record.fields is not None:
                    quirks.planted(line, quirk, record.fields)
        if any(quirk.kind == BLANK_LAST_LINE for quirk in planted):
            quirks.blank_line(writer.write_blank_line())
