"""Data quality checks on every table asset, evaluated per release partition.

Each table gets one `multi_asset_check` whose specs carry the release partitions, so
Dagster records every evaluation against its partition: the UI shows the checks of
each release, they run right after the table in the `load_release` job (a group
selection includes the checks of its assets), and a user can re-run them on any
release without reloading it. The alternative, check results returned inside the
asset's MaterializeResult, records a partition only with the same partitioned specs,
and ties the checks to a reload.

One small function per check, each returning a dg.AssetCheckResult with its counts and
a sample in the metadata. Every check reads what is attached for the release (or its
latest completed table_load), never a loading child. Duplicates and orphans are
reported, never dropped.
"""

import warnings
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import dagster as dg
import psycopg
from psycopg import sql

from cnpj_assets.assets import GROUP, RELEASES
from cnpj_assets.cnpj_number import FIRST_WEIGHTS, SECOND_WEIGHTS
from cnpj_assets.postgres.tables import qualified
from cnpj_assets.resources import PostgresResource
from cnpj_assets.specs import TABLES, TableSpec

ROW_ACCOUNTING = "row_accounting"
KEY_UNIQUENESS = "key_uniqueness"
REFERENTIAL_INTEGRITY = "referential_integrity"
REJECT_RATIO = "reject_ratio"
CNPJ_CHECK_DIGITS = "cnpj_check_digits"
SAMPLE_SIZE = 10

CNPJ_COLUMNS: dict[str, tuple[sql.Composable, sql.Composable]] = {
    "estabelecimentos": (
        sql.SQL("d.cnpj_basico || d.cnpj_ordem || d.cnpj_dv"),
        sql.SQL("TRUE"),
    ),
    "socios": (sql.SQL("d.cpf_cnpj_socio"), sql.SQL("d.identificador_socio = '1'")),
}
"""Tables holding full CNPJs: the CNPJ expression and which rows hold one (PJ partners)."""


class QualityConfig(dg.Config):
    """Thresholds of the checks, settable per run in the launchpad."""

    max_reject_ratio: float = 0.001  # rejected records / input records above this: ERROR


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


def latest_table_load(connection: psycopg.Connection, table: str, release: str) -> int | None:
    """The id of the table load whose rows are attached: the release's last completed one."""
    row = connection.execute(
        "SELECT max(id) FROM cnpj_audit.table_load "
        "WHERE table_name = %s AND release = %s AND status = 'COMPLETED'",
        (table, release),
    ).fetchone()
    return row[0] if row else None


_FILE_COUNTS = """
SELECT zip_name, lines, rows, rejects, coalesce(blank_lines, 0), coalesce(continuation_lines, 0)
FROM cnpj_audit.file_load WHERE table_load_id = %s ORDER BY id
"""


def row_accounting(
    connection: psycopg.Connection, spec: TableSpec, table_load_id: int
) -> dg.AssetCheckResult:
    """Every physical line of every file is a row, a reject, a blank or a continuation."""
    files = connection.execute(_FILE_COUNTS, (table_load_id,)).fetchall()
    table = ["| zip | lines | rows | rejects | blank | continuation | balanced |", "|---" * 7 + "|"]
    unbalanced = []
    for zip_name, lines, rows, rejects, blank, continuation in files:
        balanced = lines is not None and lines == rows + rejects + blank + continuation
        if not balanced:
            unbalanced.append(zip_name)
        table.append(
            f"| {zip_name} | {lines} | {rows} | {rejects} | {blank} | {continuation} "
            f"| {'yes' if balanced else '**no**'} |"
        )
    description = (
        f"all {len(files)} files: lines = rows + rejects + blank + continuation lines"
        if not unbalanced
        else f"{len(unbalanced)} of {len(files)} files do not add up: {', '.join(unbalanced)}"
    )
    metadata = {
        "table_load_id": dg.MetadataValue.int(table_load_id),
        "files": dg.MetadataValue.int(len(files)),
        "unbalanced_files": dg.MetadataValue.int(len(unbalanced)),
        "lines": dg.MetadataValue.int(sum(f[1] or 0 for f in files)),
        "accounting": dg.MetadataValue.md("\n".join(table)),
    }
    return _result(
        spec, ROW_ACCOUNTING, not unbalanced, dg.AssetCheckSeverity.ERROR, description, metadata
    )


def key_uniqueness(
    connection: psycopg.Connection, spec: TableSpec, release: str
) -> dg.AssetCheckResult:
    """How many key values repeat, with a sample; the rows all stay in the table."""
    key = sql.SQL(", ").join(sql.Identifier(c) for c in spec.key or ())
    duplicates = sql.SQL(
        "SELECT {key}, count(*) AS n FROM {table} WHERE release = %(release)s "
        "GROUP BY {key} HAVING count(*) > 1"
    ).format(key=key, table=qualified(spec.name))
    values, extra = connection.execute(
        sql.SQL("SELECT count(*), coalesce(sum(n - 1), 0) FROM ({}) AS d").format(duplicates),
        {"release": release},
    ).fetchone() or (0, 0)
    sample = connection.execute(
        sql.SQL("{} ORDER BY n DESC, {} LIMIT %(limit)s").format(duplicates, key),
        {"release": release, "limit": SAMPLE_SIZE},
    ).fetchall()
    columns = ", ".join(spec.key or ())
    description = (
        f"({columns}) is unique"
        if not values
        else f"{values} value(s) of ({columns}) repeat, {extra} extra row(s); all rows kept"
    )
    metadata = {
        "duplicate_keys": dg.MetadataValue.int(int(values)),
        "extra_rows": dg.MetadataValue.int(int(extra)),
        "sample": dg.MetadataValue.json(
            [
                {**dict(zip(spec.key or (), row[:-1], strict=True)), "rows": row[-1]}
                for row in sample
            ]
        ),
    }
    return _result(
        spec, KEY_UNIQUENESS, not values, dg.AssetCheckSeverity.WARN, description, metadata
    )


def _orphans(
    connection: psycopg.Connection, spec: TableSpec, column: str, release: str
) -> dict[str, Any]:
    """Rows of `column` whose code the referenced table of the same release lacks."""
    referenced = TABLES[spec.column(column).references or ""]
    statement = sql.SQL(
        "SELECT count(*), count(DISTINCT d.{column}), "
        "(array_agg(DISTINCT d.{column} ORDER BY d.{column}))[1:%(limit)s] "
        "FROM {table} d WHERE d.release = %(release)s AND d.{column} <> '' "
        "AND NOT EXISTS (SELECT 1 FROM {referenced} r "
        "WHERE r.release = %(release)s AND r.{key} = d.{column})"
    ).format(
        column=sql.Identifier(column),
        table=qualified(spec.name),
        referenced=qualified(referenced.name),
        key=sql.Identifier((referenced.key or ())[0]),
    )
    rows, codes, sample = connection.execute(
        statement, {"release": release, "limit": SAMPLE_SIZE}
    ).fetchone() or (0, 0, None)
    return {"references": referenced.name, "rows": rows, "codes": codes, "sample": sample or []}


def referential_integrity(
    connection: psycopg.Connection, spec: TableSpec, release: str
) -> dg.AssetCheckResult:
    """Orphan rows per code column: codes the referenced table of the release lacks."""
    orphans = {
        column.name: _orphans(connection, spec, column.name, release)
        for column in spec.columns
        if column.references and column.references != spec.name
    }
    total = sum(o["rows"] for o in orphans.values())
    description = (
        "every code is in its lookup"
        if not total
        else "orphans: "
        + ", ".join(
            f"{column} {o['rows']} row(s), {o['codes']} code(s) missing from {o['references']}"
            for column, o in orphans.items()
            if o["rows"]
        )
    )
    metadata: dict[str, Any] = {"orphan_rows": dg.MetadataValue.int(total)}
    metadata |= {f"{c}_orphan_rows": dg.MetadataValue.int(o["rows"]) for c, o in orphans.items()}
    metadata["orphans"] = dg.MetadataValue.json(orphans)
    return _result(
        spec, REFERENTIAL_INTEGRITY, not total, dg.AssetCheckSeverity.WARN, description, metadata
    )


def reject_ratio(
    connection: psycopg.Connection, spec: TableSpec, table_load_id: int, max_ratio: float
) -> dg.AssetCheckResult:
    """Rejected records over input records of the load, against a configurable ceiling."""
    rows, rejects = connection.execute(
        "SELECT rows, rejects FROM cnpj_audit.table_load WHERE id = %s", (table_load_id,)
    ).fetchone() or (0, 0)
    ratio = rejects / (rows + rejects) if rows + rejects else 0.0
    passed = ratio <= max_ratio
    description = (
        f"{rejects} of {rows + rejects} records rejected ({ratio:.4%}), "
        f"{'within' if passed else 'above'} the ceiling of {max_ratio:.4%}"
    )
    metadata = {
        "rejects": dg.MetadataValue.int(rejects),
        "records": dg.MetadataValue.int(rows + rejects),
        "reject_ratio": dg.MetadataValue.float(ratio),
        "max_reject_ratio": dg.MetadataValue.float(max_ratio),
    }
    return _result(spec, REJECT_RATIO, passed, dg.AssetCheckSeverity.ERROR, description, metadata)


def _mod11_digit(total: sql.Composable) -> sql.Composed:
    return sql.SQL("CASE WHEN mod({t}, 11) < 2 THEN 0 ELSE 11 - mod({t}, 11) END").format(t=total)


def _weighted_sum(weights: Sequence[int]) -> sql.Composed:
    return sql.SQL(" + ").join(
        sql.SQL("{} * (ascii(substr(a.cnpj, {}, 1)) - 48)").format(
            sql.Literal(weight), sql.Literal(position)
        )
        for position, weight in enumerate(weights[:12], start=1)
    )


def cnpj_validity_query(source: sql.Composable) -> sql.Composed:
    """`cnpj, valid` for each `cnpj` the source query yields, by the alphanumeric rule.

    Each character is worth its code minus 48 (IN RFB 2.229/2024), so digits keep their
    value and numeric CNPJs get their old check digits. It runs inside PostgreSQL: a
    release has 72 M establishments, too many to ship to Python.
    """
    second = sql.SQL("s.s2 + {} * f.d1").format(sql.Literal(SECOND_WEIGHTS[12]))
    return sql.SQL(
        "SELECT a.cnpj, coalesce(a.cnpj ~ '^[0-9A-Z]{{12}}[0-9]{{2}}$' "
        "AND substr(a.cnpj, 13, 2) = f.d1::text || ({d2})::text, FALSE) AS valid "
        "FROM ({source}) AS a "
        "CROSS JOIN LATERAL (SELECT {s1} AS s1, {s2} AS s2) AS s "
        "CROSS JOIN LATERAL (SELECT {d1} AS d1) AS f"
    ).format(
        source=source,
        s1=_weighted_sum(FIRST_WEIGHTS),
        s2=_weighted_sum(SECOND_WEIGHTS),
        d1=_mod11_digit(sql.SQL("s.s1")),
        d2=_mod11_digit(second),
    )


def cnpj_check_digits(
    connection: psycopg.Connection, spec: TableSpec, release: str
) -> dg.AssetCheckResult:
    """Share of the table's full CNPJs whose two check digits are wrong."""
    expression, holds_cnpj = CNPJ_COLUMNS[spec.name]
    source = sql.SQL("SELECT {} AS cnpj FROM {} d WHERE d.release = %(release)s AND {}").format(
        expression, qualified(spec.name), holds_cnpj
    )
    total, invalid, sample = connection.execute(
        sql.SQL(
            "SELECT count(*), count(*) FILTER (WHERE NOT valid), "
            "(array_agg(cnpj ORDER BY cnpj) FILTER (WHERE NOT valid))[1:%(limit)s] FROM ({}) AS v"
        ).format(cnpj_validity_query(source)),
        {"release": release, "limit": SAMPLE_SIZE},
    ).fetchone() or (0, 0, None)
    share = invalid / total if total else 0.0
    description = f"{invalid} of {total} CNPJs have wrong check digits ({share:.4%})"
    metadata = {
        "cnpjs": dg.MetadataValue.int(total),
        "invalid_cnpjs": dg.MetadataValue.int(invalid),
        "invalid_share": dg.MetadataValue.float(share),
        "sample": dg.MetadataValue.json(sample or []),
    }
    return _result(
        spec, CNPJ_CHECK_DIGITS, not invalid, dg.AssetCheckSeverity.WARN, description, metadata
    )


_DESCRIPTIONS = {
    ROW_ACCOUNTING: "Each file's lines = rows + rejects + blank + continuation lines (ERROR).",
    KEY_UNIQUENESS: "Key values that repeat, with a sample; duplicates are kept (WARN).",
    REFERENTIAL_INTEGRITY: "Codes missing from the table they reference, per column (WARN).",
    REJECT_RATIO: "Rejected records over all records, above max_reject_ratio (ERROR).",
    CNPJ_CHECK_DIGITS: "Share of full CNPJs with wrong check digits, alphanumeric rule (WARN).",
}


def check_names(spec: TableSpec) -> list[str]:
    """The checks that apply to a table: a key, references or full CNPJs make theirs."""
    names = [ROW_ACCOUNTING, REJECT_RATIO]
    if spec.key:
        names.append(KEY_UNIQUENESS)
    if any(c.references and c.references != spec.name for c in spec.columns):
        names.append(REFERENTIAL_INTEGRITY)
    if spec.name in CNPJ_COLUMNS:
        names.append(CNPJ_CHECK_DIGITS)
    return names


def check_specs(spec: TableSpec) -> list[dg.AssetCheckSpec]:
    """Partitioned specs: dagster 1.13 flags them preview; the exact pin keeps them stable."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.PreviewWarning)
        return [
            dg.AssetCheckSpec(
                name,
                asset=_asset_key(spec),
                description=_DESCRIPTIONS[name],
                partitions_def=RELEASES,
            )
            for name in check_names(spec)
        ]


def evaluate(
    connection: psycopg.Connection,
    spec: TableSpec,
    release: str,
    names: Sequence[str],
    config: QualityConfig,
) -> list[dg.AssetCheckResult]:
    """Run the named checks of a table on one release, in `check_names` order."""
    table_load_id = latest_table_load(connection, spec.name, release)
    if table_load_id is None:
        message = f"no completed load of {spec.name} for release {release}"
        return [_result(spec, n, False, dg.AssetCheckSeverity.ERROR, message, {}) for n in names]
    runners: dict[str, Callable[[], dg.AssetCheckResult]] = {
        ROW_ACCOUNTING: lambda: row_accounting(connection, spec, table_load_id),
        REJECT_RATIO: lambda: reject_ratio(
            connection, spec, table_load_id, config.max_reject_ratio
        ),
        KEY_UNIQUENESS: lambda: key_uniqueness(connection, spec, release),
        REFERENTIAL_INTEGRITY: lambda: referential_integrity(connection, spec, release),
        CNPJ_CHECK_DIGITS: lambda: cnpj_check_digits(connection, spec, release),
    }
    return [runners[name]() for name in check_names(spec) if name in names]


def build_table_checks(spec: TableSpec) -> dg.AssetChecksDefinition:
    """The checks of `cnpj/<table>`, one op per table; the UI can run any subset of them."""

    @dg.multi_asset_check(
        name=f"{spec.name}_checks",
        specs=check_specs(spec),
        can_subset=True,
        description=f"Data quality of {spec.name}, per release.",
    )
    def _checks(
        context: dg.AssetCheckExecutionContext, postgres: PostgresResource, config: QualityConfig
    ) -> Iterator[dg.AssetCheckResult]:
        names = [key.name for key in context.selected_asset_check_keys]
        with psycopg.connect(postgres.url()) as connection:
            yield from evaluate(connection, spec, context.partition_key, names, config)

    return _checks


TABLE_CHECKS = [build_table_checks(spec) for spec in TABLES.values()]
