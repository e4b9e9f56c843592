"""Data quality checks on every table asset, evaluated per release partition.

Each table gets one `multi_asset_check` whose specs carry the release partitions, so
Dagster records every evaluation against its partition: the UI shows the checks of
each release, they run right after the table in the `load_release` job (a group
selection includes the checks of its assets), and a user can re-run them on any
release without reloading it.

Two modes, named in each result's metadata (`mode`):
- in-load: the numbers the load counted while it read every row (`quality.tally`),
  read from the audit; only what needs the whole table at once runs in SQL (the
  establishments, partners and Simples rows whose company is missing: one anti-join
  over the indexes). This is what a release job runs: no second scan of the data.
- deep: everything counted again from the data in PostgreSQL (`quality.deep`), so a
  check can be trusted without the loader's word for it.
`mode: auto` (the default) takes the in-load counts when this very run made the load,
and the deep mode when a check is re-run on a release loaded earlier.

Every check reads what is attached for the release (its latest completed table_load),
never a loading child. Duplicates and orphans are reported, never dropped.
"""

import enum
import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dagster as dg
import psycopg

from cnpj_assets.audit.queries import (
    CompletedLoad,
    latest_completed_load,
    published_before,
    rows_loaded,
)
from cnpj_assets.audit.schema import ensure_audit_schema
from cnpj_assets.defs import plotted
from cnpj_assets.defs.assets import GROUP, RELEASES
from cnpj_assets.defs.resources import PostgresResource
from cnpj_assets.quality import deep
from cnpj_assets.quality.counted import CountedLoad
from cnpj_assets.quality.rules import (
    CNPJ_CHECK_DIGITS,
    KEY_UNIQUENESS,
    REFERENTIAL_INTEGRITY,
    REJECT_RATIO,
    ROW_ACCOUNTING,
    ROW_COUNT_DRIFT,
    UNKNOWN_LABELS,
    check_names,
    label_columns,
)
from cnpj_assets.read.labels import label_set_for
from cnpj_assets.specs import TABLES, TableSpec

IN_LOAD, ANTI_JOIN, DEEP = "in-load counts", "one anti-join", "deep (PostgreSQL scanned)"


class CheckMode(enum.Enum):
    """Where a check takes its numbers from (see the module docstring)."""

    AUTO = "auto"
    IN_LOAD = "in_load"
    DEEP = "deep"


class QualityConfig(dg.Config):
    """Thresholds and mode of the checks, settable per run in the launchpad.

    The drift bounds come from how real releases change: a fact table grows by well
    under 1% a month and hardly ever shrinks (closed companies stay, as `baixada`), so a
    release that shrinks or jumps is more likely partial or broken than real. Lookups
    (a few hundred codes) may gain or lose a code or two.
    """

    max_reject_ratio: float = 0.001  # rejected records / input records above this: ERROR
    max_shrink: float = 0.005  # a fact table with fewer rows than this below the last: ERROR
    max_growth: float = 0.05  # a fact table with more rows than this above the last: ERROR
    lookup_max_change: float = 0.2  # a lookup's rows changed by more than this share: ERROR
    mode: CheckMode = CheckMode.AUTO


def _asset_key(spec: TableSpec) -> dg.AssetKey:
    return dg.AssetKey([GROUP, spec.name])


def _result(
    spec: TableSpec,
    name: str,
    passed: bool,
    severity: dg.AssetCheckSeverity,
    description: str,
    metadata: dict[str, Any],
) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(
        asset_key=_asset_key(spec),
        check_name=name,
        passed=passed,
        severity=severity,
        description=description,
        metadata=metadata,
    )


class _Evaluation:
    """The checks of one table on one release, from one completed load, in one mode."""

    def __init__(
        self,
        connection: psycopg.Connection,
        spec: TableSpec,
        release: str,
        load: CompletedLoad,
        in_load: bool,
    ) -> None:
        self.connection = connection
        self.spec = spec
        self.release = release
        self.load = load
        self.counted = CountedLoad(connection, load.id) if in_load else None

    def _metadata(self, mode: str, **values: Any) -> dict[str, Any]:
        return {
            "mode": dg.MetadataValue.text(mode),
            "table_load_id": plotted.audit_id(self.load.id),
            **values,
        }

    def row_accounting(self) -> dg.AssetCheckResult:
        """Every physical line of every file is a row, a reject, a blank, a continuation or
        the header.

        Deep, a file's rows are counted in PostgreSQL: what the audit says was loaded
        from each file must be there.
        """
        mode = IN_LOAD if self.counted else DEEP
        files = deep.file_rows(
            self.connection, self.spec, self.release, self.load.id, deep=self.counted is None
        )
        table = [
            "| zip | lines | rows | rejects | blank | continuation | header | balanced |",
            "|---" * 8 + "|",
        ]
        unbalanced = []
        for f in files:
            balanced = (
                f.lines is not None
                and f.lines == f.rows + f.rejects + f.blank + f.continuation + f.header
            )
            if not balanced:
                unbalanced.append(f.zip_name)
            table.append(
                f"| {f.zip_name} | {f.lines} | {f.rows} | {f.rejects} | {f.blank} | "
                f"{f.continuation} | {f.header} | {'yes' if balanced else '**no**'} |"
            )
        description = (
            f"all {len(files)} files: lines = rows + rejects + blank + continuation lines"
            if not unbalanced
            else f"{len(unbalanced)} of {len(files)} files do not add up: {', '.join(unbalanced)}"
        )
        metadata = self._metadata(
            mode,
            files=dg.MetadataValue.int(len(files)),
            unbalanced_files=dg.MetadataValue.int(len(unbalanced)),
            lines=dg.MetadataValue.int(sum(f.lines or 0 for f in files)),
            accounting=dg.MetadataValue.md("\n".join(table)),
        )
        return _result(
            self.spec,
            ROW_ACCOUNTING,
            not unbalanced,
            dg.AssetCheckSeverity.ERROR,
            description,
            metadata,
        )

    def reject_ratio(self, max_ratio: float) -> dg.AssetCheckResult:
        """Rejected records over input records, against a configurable ceiling.

        Rejects live only in the audit; deep, the loaded rows are counted in PostgreSQL.
        """
        rejects = int(
            (
                self.connection.execute(
                    "SELECT rejects FROM cnpj_audit.table_load WHERE id = %s", (self.load.id,)
                ).fetchone()
                or (0,)
            )[0]
        )
        if self.counted:
            mode, rows = IN_LOAD, self.load.rows
        else:
            mode, rows = DEEP, deep.row_count(self.connection, self.spec, self.release)
        ratio = rejects / (rows + rejects) if rows + rejects else 0.0
        passed = ratio <= max_ratio
        description = (
            f"{rejects} of {rows + rejects} records rejected ({ratio:.4%}), "
            f"{'within' if passed else 'above'} the ceiling of {max_ratio:.4%}"
        )
        metadata = self._metadata(
            mode,
            rejects=dg.MetadataValue.int(rejects),
            records=dg.MetadataValue.int(rows + rejects),
            reject_ratio=dg.MetadataValue.float(ratio),
            max_reject_ratio=dg.MetadataValue.float(max_ratio),
        )
        return _result(
            self.spec, REJECT_RATIO, passed, dg.AssetCheckSeverity.ERROR, description, metadata
        )

    def key_uniqueness(self) -> dg.AssetCheckResult:
        """How many key values repeat, with a sample; the rows all stay in the table."""
        key = self.spec.key or ()
        counted = self.counted.duplicate_keys(",".join(key)) if self.counted else None
        mode = IN_LOAD if counted else DEEP
        found = counted or deep.duplicate_keys(self.connection, self.spec, self.release)
        columns = ", ".join(key)
        description = (
            f"({columns}) is unique"
            if not found.values
            else f"{found.values} value(s) of ({columns}) repeat, {found.extra_rows} extra "
            "row(s); all rows kept"
        )
        metadata = self._metadata(
            mode,
            duplicate_keys=dg.MetadataValue.int(found.values),
            extra_rows=dg.MetadataValue.int(found.extra_rows),
            sample=dg.MetadataValue.json([{**s["value"], "rows": s["rows"]} for s in found.sample]),
        )
        return _result(
            self.spec,
            KEY_UNIQUENESS,
            not found.values,
            dg.AssetCheckSeverity.WARN,
            description,
            metadata,
        )

    def referential_integrity(self) -> dg.AssetCheckResult:
        """Orphan rows per code column: codes the referenced table of the release lacks.

        In-load, lookup codes were counted as the rows went by; a column pointing at
        empresas (60 M keys at real size) is one anti-join after the load.
        """
        found: dict[str, deep.Orphans] = {}
        modes: set[str] = set()
        for column in self.spec.columns:
            if not column.references or column.references == self.spec.name:
                continue
            counted = self.counted.orphans(column.name, column.references) if self.counted else None
            if counted is not None:
                modes.add(IN_LOAD)
                found[column.name] = counted
                continue
            in_sql = self.counted is not None and not TABLES[column.references].is_lookup
            modes.add(ANTI_JOIN if in_sql else DEEP)
            found[column.name] = deep.orphans(self.connection, self.spec, column.name, self.release)
        total = sum(o.rows for o in found.values())
        description = (
            "every code is in its lookup"
            if not total
            else "orphans: " + _failing_codes(found, " missing from {references}")
        )
        metadata = self._metadata(
            " + ".join(m for m in (IN_LOAD, ANTI_JOIN, DEEP) if m in modes),
            orphan_rows=dg.MetadataValue.int(total),
        )
        metadata |= {f"{c}_orphan_rows": dg.MetadataValue.int(o.rows) for c, o in found.items()}
        metadata["orphans"] = dg.MetadataValue.json({c: o._asdict() for c, o in found.items()})
        if self.counted:
            counted = self.counted
            metadata["first_lines"] = dg.MetadataValue.json(
                {
                    column: [s._asdict() for s in counted.sampled(REFERENTIAL_INTEGRITY, column)]
                    for column in found
                    if counted.orphans(column, found[column].references)
                }
            )
        return _result(
            self.spec,
            REFERENTIAL_INTEGRITY,
            not total,
            dg.AssetCheckSeverity.WARN,
            description,
            metadata,
        )

    def unknown_labels(self) -> dg.AssetCheckResult:
        """Codes of a labelled column that read/labels.py does not know: shown with a NULL
        label; a new code in a release is news, so WARN, never an error."""
        found: dict[str, deep.Orphans] = {}
        modes: set[str] = set()
        for column in label_columns(self.spec):
            domain = label_set_for(self.spec.name, column)
            assert domain is not None
            counted = (
                self.counted.orphans(column, domain.domain, UNKNOWN_LABELS)
                if self.counted
                else None
            )
            modes.add(IN_LOAD if counted else DEEP)
            found[column] = counted or deep.unknown_labels(
                self.connection, self.spec, column, self.release
            )
        total = sum(o.rows for o in found.values())
        description = (
            "every code has its label"
            if not total
            else "codes without a label: " + _failing_codes(found, "")
        )
        metadata = self._metadata(
            " + ".join(m for m in (IN_LOAD, DEEP) if m in modes),
            unknown_label_rows=dg.MetadataValue.int(total),
        )
        metadata |= {f"{c}_unknown_rows": dg.MetadataValue.int(o.rows) for c, o in found.items()}
        metadata["unknown_codes"] = dg.MetadataValue.json(
            {c: o.sample for c, o in found.items() if o.rows}
        )
        return _result(
            self.spec,
            UNKNOWN_LABELS,
            not total,
            dg.AssetCheckSeverity.WARN,
            description,
            metadata,
        )

    def row_count_drift(self, config: QualityConfig) -> dg.AssetCheckResult:
        """The release's rows against the last published release's, within bounds (ERROR).

        Compared with the newest published release older than this one, so a backfill
        of an old release is compared with what came before it, not after.
        """
        mode, rows = (
            (IN_LOAD, self.load.rows)
            if self.counted
            else (DEEP, deep.row_count(self.connection, self.spec, self.release))
        )
        previous = published_before(self.connection, self.release)
        before = rows_loaded(self.connection, self.spec.name, previous) if previous else None
        if previous is None or not before:
            return _result(
                self.spec,
                ROW_COUNT_DRIFT,
                True,
                dg.AssetCheckSeverity.ERROR,
                f"{rows} rows; no release published before {self.release} to compare with",
                self._metadata(mode, rows=dg.MetadataValue.int(rows)),
            )
        change = rows / before - 1
        low, high = (
            (-config.lookup_max_change, config.lookup_max_change)
            if self.spec.is_lookup
            else (-config.max_shrink, config.max_growth)
        )
        passed = low <= change <= high
        description = (
            f"{rows} rows against {before} in {previous} ({change:+.2%}), "
            f"{'within' if passed else 'outside'} {low:+.2%}..{high:+.2%}"
        )
        metadata = self._metadata(
            mode,
            rows=dg.MetadataValue.int(rows),
            previous_release=dg.MetadataValue.text(previous),
            previous_rows=dg.MetadataValue.int(before),
            change=dg.MetadataValue.float(round(change, 6)),
        )
        return _result(
            self.spec, ROW_COUNT_DRIFT, passed, dg.AssetCheckSeverity.ERROR, description, metadata
        )

    def cnpj_check_digits(self) -> dg.AssetCheckResult:
        """Share of the table's full CNPJs whose two check digits are wrong."""
        source = self.spec.full_cnpj
        assert source is not None
        column = "+".join(source.columns)
        counted = self.counted.check_digits(column) if self.counted else None
        found = counted or deep.check_digits(self.connection, self.spec, self.release)
        share = found.invalid / found.cnpjs if found.cnpjs else 0.0
        description = (
            f"{found.invalid} of {found.cnpjs} CNPJs have wrong check digits ({share:.4%})"
        )
        metadata = self._metadata(
            IN_LOAD if counted else DEEP,
            cnpjs=dg.MetadataValue.int(found.cnpjs),
            invalid_cnpjs=dg.MetadataValue.int(found.invalid),
            invalid_share=dg.MetadataValue.float(share),
            sample=dg.MetadataValue.json(found.sample),
        )
        if counted and self.counted:
            metadata["first_lines"] = dg.MetadataValue.json(
                [s._asdict() for s in self.counted.sampled(CNPJ_CHECK_DIGITS, column)]
            )
        return _result(
            self.spec,
            CNPJ_CHECK_DIGITS,
            not found.invalid,
            dg.AssetCheckSeverity.WARN,
            description,
            metadata,
        )


def _codes(orphans: deep.Orphans) -> str:
    return str(orphans.codes) if orphans.codes is not None else f"at least {len(orphans.sample)}"


def _failing_codes(found: dict[str, deep.Orphans], where: str) -> str:
    """Each column with failing rows: its rows and codes, then `where` (formatted with the
    Orphans' fields)."""
    return ", ".join(
        f"{column} {o.rows} row(s), {_codes(o)} code(s){where.format(**o._asdict())}"
        for column, o in found.items()
        if o.rows
    )


def _in_load(mode: CheckMode, load: CompletedLoad, run_id: str | None) -> bool:
    if mode is CheckMode.AUTO:
        return run_id is not None and load.dagster_run_id == run_id
    return mode is CheckMode.IN_LOAD


def evaluate(
    connection: psycopg.Connection,
    spec: TableSpec,
    release: str,
    names: Sequence[str],
    config: QualityConfig,
    run_id: str | None = None,
) -> list[dg.AssetCheckResult]:
    """Run the named checks of a table on one release, in `check_names` order.

    `run_id` is the Dagster run asking: in `auto` mode, the load it made is trusted
    for its counts; any other load is verified deep. The audit is made first: checks run
    on a database no load has touched yet fail as "no completed load", not on a missing
    table.
    """
    ensure_audit_schema(connection)
    load = latest_completed_load(connection, spec.name, release)
    if load is None:
        message = f"no completed load of {spec.name} for release {release}"
        return [_result(spec, n, False, dg.AssetCheckSeverity.ERROR, message, {}) for n in names]
    evaluation = _Evaluation(connection, spec, release, load, _in_load(config.mode, load, run_id))
    runners: dict[str, Callable[[], dg.AssetCheckResult]] = {
        ROW_ACCOUNTING: evaluation.row_accounting,
        REJECT_RATIO: lambda: evaluation.reject_ratio(config.max_reject_ratio),
        ROW_COUNT_DRIFT: lambda: evaluation.row_count_drift(config),
        KEY_UNIQUENESS: evaluation.key_uniqueness,
        REFERENTIAL_INTEGRITY: evaluation.referential_integrity,
        CNPJ_CHECK_DIGITS: evaluation.cnpj_check_digits,
        UNKNOWN_LABELS: evaluation.unknown_labels,
    }
    return [runners[name]() for name in check_names(spec) if name in names]


_DESCRIPTIONS = {
    ROW_ACCOUNTING: "Each file's lines = rows + rejects + blank + continuation lines (ERROR).",
    KEY_UNIQUENESS: "Key values that repeat, with a sample; duplicates are kept (WARN).",
    REFERENTIAL_INTEGRITY: "Codes missing from the table they reference, per column (WARN).",
    REJECT_RATIO: "Rejected records over all records, above max_reject_ratio (ERROR).",
    ROW_COUNT_DRIFT: "Rows against the last published release's, within bounds (ERROR).",
    CNPJ_CHECK_DIGITS: "Share of full CNPJs with wrong check digits, alphanumeric rule (WARN).",
    UNKNOWN_LABELS: "Codes the layout's labels do not know, shown with a NULL label (WARN).",
}


def check_specs(
    spec: TableSpec, partitions_def: dg.PartitionsDefinition = RELEASES
) -> list[dg.AssetCheckSpec]:
    """Partitioned specs: dagster 1.13 flags them preview; the exact pin keeps them stable.

    The referential check of a table pointing at empresas reads empresas too, so it
    runs once empresas is loaded.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                name,
                asset=_asset_key(spec),
                description=_DESCRIPTIONS[name],
                partitions_def=partitions_def,
                additional_deps=[dg.AssetKey([GROUP, table]) for table in spec.referenced_tables]
                if name == REFERENTIAL_INTEGRITY
                else None,
            )
            for name in check_names(spec)
        ]


def build_table_checks(
    spec: TableSpec, partitions_def: dg.PartitionsDefinition = RELEASES
) -> dg.AssetChecksDefinition:
    """The checks of `cnpj/<table>`, one op per table; the UI can run any subset of them."""

    @dg.multi_asset_check(
        name=f"{spec.name}_checks",
        specs=check_specs(spec, partitions_def),
        can_subset=True,
        description=f"Data quality of {spec.name}, per partition.",
    )
    def _checks(
        context: dg.AssetCheckExecutionContext, postgres: PostgresResource, config: QualityConfig
    ) -> Iterator[dg.AssetCheckResult]:
        names = [key.name for key in context.selected_asset_check_keys]
        with psycopg.connect(postgres.url(), autocommit=True) as connection:
            yield from evaluate(
                connection, spec, context.partition_key, names, config, context.run.run_id
            )

    return _checks


TABLE_CHECKS = [build_table_checks(spec) for spec in TABLES.values()]
