"""write_release: the 37 zips of a synthetic CNPJ release and the report that describes them."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import re
from collections.abc import Collection
from pathlib import Path

from cnpj_assets.specs import TABLES, TableSpec
from cnpj_assets.synthetic.companies import Companies
from cnpj_assets.synthetic.csvformat import join_record
from cnpj_assets.synthetic.lookups import ORPHAN_CODES, build_lookups
from cnpj_assets.synthetic.quirks import (
    BLANK_LAST_LINE,
    LOADED,
    MIN_ROWS,
    Quirk,
    apply,
    place,
    quirks_of_file,
)
from cnpj_assets.synthetic.report import FileReport, QuirkEntry, ReleaseReport
from cnpj_assets.synthetic.rows import BUILDERS
from cnpj_assets.synthetic.values import Pools, build_pools
from cnpj_assets.synthetic.writer import MemberWriter, zip_member

EXTRACTION_DAY = 12  # real extractions happen in the first half of the release month
ORPHANS_PER_COMPANY = 1 / 500  # establishments whose company is missing from empresas


def extraction_date(release: str) -> dt.date:
    """The extraction date of a `YYYY-MM` release, the one its member names carry."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", release)
    if not match or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"a release is named YYYY-MM, not {release!r}")
    return dt.date(int(match[1]), int(match[2]), EXTRACTION_DAY)


def member_date(day: dt.date) -> str:
    """yMMdd: one-digit year, month, day (2026-10-12 -> 61012)."""
    return f"{day.year % 10}{day.month:02d}{day.day:02d}"


class _ReleaseWriter:
    """Writes the files of one release in turn, collecting their reports."""

    def __init__(
        self, rows: int, seed: int, day: dt.date, quirks: bool, only: Collection[str] | None
    ) -> None:
        self.rows = rows
        self.only = set(only) if only is not None else None
        self.seed = seed
        self.day = day
        self.quirks = quirks
        self.lookups = build_lookups()
        self.pools: Pools = build_pools(seed, self.lookups, day)
        self.companies = Companies(
            seed, rows, max(1, int(rows * ORPHANS_PER_COMPANY)) if rows else 0
        )
        self.files: list[FileReport] = []
        self.quirk_entries: list[QuirkEntry] = []

    def write_all(self, folder: Path) -> None:
        timestamp = dt.datetime.combine(self.day, dt.time())
        for spec in TABLES.values():
            for number, zip_name in enumerate(spec.zip_names()):
                if self.only is not None and zip_name not in self.only:
                    continue
                member = spec.member_name(number, member_date(self.day))
                with zip_member(folder / zip_name, member, timestamp) as writer:
                    if spec.is_lookup:
                        writer.write([join_record(row) for row in self.lookups.rows[spec.name]])
                    else:
                        self._write_facts(writer, spec, number, zip_name, member)
                self.files.append(
                    FileReport(zip_name, spec.name, member, writer.records, writer.physical_lines)
                )

    def _write_facts(
        self, writer: MemberWriter, spec: TableSpec, number: int, zip_name: str, member: str
    ) -> None:
        companies = self.companies
        owned = companies.file_ranges()[number] if spec.file_count > 1 else range(companies.rows)
        orphans = companies.orphans_of_file(number) if spec.name == "estabelecimentos" else ()
        rng = random.Random(f"{self.seed}/{spec.name}/{number}")
        source = BUILDERS[spec.name](companies, self.pools, rng)
        planted = quirks_of_file(spec.name, number) if self.quirks else ()
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
                    self._report(spec, zip_name, member, line, quirk, record.fields)
        if any(quirk.kind == BLANK_LAST_LINE for quirk in planted):
            line = writer.write_blank_line()
            entry = QuirkEntry(zip_name, member, spec.name, line, BLANK_LAST_LINE, LOADED)
            self.quirk_entries.append(entry)

    def _report(
        self,
        spec: TableSpec,
        zip_name: str,
        member: str,
        line: int,
        quirk: Quirk,
        fields: list[str],
    ) -> None:
        columns = spec.column_names

        def field(name: str) -> str | None:
            return fields[columns.index(name)] if name in columns else None

        self.quirk_entries.append(
            QuirkEntry(
                zip_name,
                member,
                spec.name,
                line,
                quirk.kind,
                quirk.expected,
                cnpj_basico=field("cnpj_basico"),
                cnpj_ordem=field("cnpj_ordem"),
                cnpj_dv=field("cnpj_dv"),
                codigo=field("codigo"),
                column=quirk.column,
                value=quirk.value,
            )
        )

    def report(self, release: str) -> ReleaseReport:
        companies = self.companies
        orphans = range(companies.rows, companies.rows + companies.orphan_count)
        return ReleaseReport(
            release=release,
            extraction_date=member_date(self.day),
            seed=self.seed,
            rows=self.rows,
            with_quirks=self.quirks,
            files=tuple(self.files),
            quirks=tuple(self.quirk_entries),
            orphan_cnpj_basicos=tuple(companies.key(index).basico for index in orphans),
            orphan_codes=dict(ORPHAN_CODES),
        )


def write_release(
    release: str,
    rows: int,
    out_dir: Path,
    seed: int = 0,
    quirks: bool = False,
    only: Collection[str] | None = None,
) -> ReleaseReport:
    """Write a synthetic release into `out_dir/<release>/`: 37 zips and quirks.json.

    `rows` is the number of empresas rows; establishments (~1.05x), partners (~0.4x) and
    Simples rows (~0.58x) follow from it, lookups have their real sizes. The bytes depend
    only on the arguments. With `quirks`, every real-world quirk of the layout is planted
    at a reported line (see quirks.QUIRKS); that needs at least 100 rows. `only` names
    the zips to write (benchmarks want one big file, not a release); the others are
    skipped but the data stays the same as in a full release.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if quirks and rows < MIN_ROWS:
        raise ValueError(f"quirks need at least {MIN_ROWS} rows to spread over the files")
    day = extraction_date(release)
    folder = Path(out_dir) / release
    folder.mkdir(parents=True, exist_ok=True)
    release_writer = _ReleaseWriter(rows, seed, day, quirks, only)
    release_writer.write_all(folder)
    report = release_writer.report(release)
    report.save(folder)
    return report
