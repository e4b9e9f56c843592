"""What a synthetic release holds: the ground truth the loader's tests compare against.

`write_release` returns a ReleaseReport and saves it as `<release>/quirks.json`, so a
test in another module can learn, without parsing CSV, how many records each table
has, how many a correct loader rejects, and on which physical line each quirk sits.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from cnpj_assets.synthetic.quirks import REJECTED

REPORT_NAME = "quirks.json"


@dataclass(frozen=True)
class FileReport:
    """One zip of the release."""

    zip: str
    table: str
    member: str
    records: int  # data records written, quirk records included
    physical_lines: int  # LF-terminated lines: a record with a newline counts 2, a blank line 1


@dataclass(frozen=True)
class QuirkEntry:
    """One planted quirk: where it is and what a correct loader does with it."""

    zip: str
    member: str
    table: str
    line: int  # physical, 1-based line where the record starts in the member
    kind: str
    expected: str  # "rejected" for a wrong column count; "loaded" otherwise (a blank line:
    # not a record, nothing to reject)
    cnpj_basico: str | None = None  # the record's key, to find the row in the database
    cnpj_ordem: str | None = None
    cnpj_dv: str | None = None
    codigo: str | None = None  # the key of a lookup record
    column: str | None = None  # the column a field quirk is in
    value: str | None = None  # that field's value as a loader should read it


@dataclass(frozen=True)
class ReleaseReport:
    """The whole release: its files, its quirks, its deliberate orphans, per-table totals."""

    release: str
    extraction_date: str  # yMMdd, as in the member names
    seed: int
    rows: int
    with_quirks: bool
    files: tuple[FileReport, ...]
    quirks: tuple[QuirkEntry, ...] = ()
    orphan_cnpj_basicos: tuple[str, ...] = ()  # establishments' companies absent from empresas
    orphan_codes: dict[str, tuple[str, ...]] = field(default_factory=dict)  # lookup -> codes

    def tables(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.table for f in self.files))

    def records(self, table: str) -> int:
        """Data records written for a table, quirk records included."""
        return sum(f.records for f in self.files if f.table == table)

    def expected_rejects(self, table: str) -> int:
        """Records of a table that a correct loader rejects (the wrong column counts)."""
        return sum(1 for q in self.quirks if q.table == table and q.expected == REJECTED)

    def expected_loaded(self, table: str) -> int:
        """Rows a correct loader stores: the exact duplicate counts twice, as written."""
        return self.records(table) - self.expected_rejects(table)

    def file(self, zip_name: str) -> FileReport:
        return next(f for f in self.files if f.zip == zip_name)

    def summary(self) -> str:
        """A human-readable account: each zip, then each quirk with its line."""
        width = max(len(f.member) for f in self.files)
        lines = [
            f"release {self.release} (extraction D{self.extraction_date}, seed {self.seed}, "
            f"{self.rows} empresas rows)",
            f"{'zip':<22} {'member':<{width}} {'records':>10} {'lines':>10}",
        ]
        lines += [
            f"{f.zip:<22} {f.member:<{width}} {f.records:>10} {f.physical_lines:>10}"
            for f in self.files
        ]
        lines.append("totals:")
        lines += [
            f"  {table:<16} {self.records(table):>10} records, "
            f"{self.expected_rejects(table)} expected rejects"
            for table in self.tables()
        ]
        lines.append(f"quirks: {len(self.quirks) or 'none'}")
        lines += [f"  {self._describe(q)}" for q in self.quirks]
        return "\n".join(lines)

    @staticmethod
    def _describe(quirk: QuirkEntry) -> str:
        column = f" in {quirk.column}" if quirk.column else ""
        key = quirk.cnpj_basico or quirk.codigo
        record = f" (record {key})" if key else ""
        return f"{quirk.zip} line {quirk.line}: {quirk.kind}{column} -> {quirk.expected}{record}"

    def to_json(self) -> str:
        """The report plus per-table totals, for readers that do not import this module."""
        data = asdict(self)
        data["totals"] = {
            table: {
                "records": self.records(table),
                "expected_rejects": self.expected_rejects(table),
                "expected_loaded": self.expected_loaded(table),
            }
            for table in self.tables()
        }
        return json.dumps(data, ensure_ascii=False, indent=1)

    def save(self, directory: Path) -> Path:
        path = directory / REPORT_NAME
        path.write_text(self.to_json() + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Path) -> ReleaseReport:
        """The report of a release written earlier, from its quirks.json (or its folder)."""
        path = path / REPORT_NAME if path.is_dir() else path
        data = json.loads(path.read_text(encoding="utf-8"))
        return cls(
            release=data["release"],
            extraction_date=data["extraction_date"],
            seed=data["seed"],
            rows=data["rows"],
            with_quirks=data["with_quirks"],
            files=tuple(FileReport(**f) for f in data["files"]),
            quirks=tuple(QuirkEntry(**q) for q in data["quirks"]),
            orphan_cnpj_basicos=tuple(data["orphan_cnpj_basicos"]),
            orphan_codes={k: tuple(v) for k, v in data["orphan_codes"].items()},
        )
