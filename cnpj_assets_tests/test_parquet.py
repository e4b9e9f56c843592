"""Parquet (and CSV) exports of a release: the files hold the tables value for value, the
manifest tells the truth about them, and a row still leads back to its zip and lines.

The module loads, in a database of its own (it publishes), the quirks release (accents,
zeros, alphanumeric CNPJs, odd dates, decimals, NULLs) in small sub-batches so a line
range pins a row down, then an older, smaller release (published as `kept`), and a
third one whose publication was never attempted.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import duckdb
import psycopg
import pyarrow as pa
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import pytest
from psycopg import sql

from cnpj_assets.cli import main
from cnpj_assets.defs.assets import RELEASES, TABLE_ASSETS
from cnpj_assets.defs.changes import changes
from cnpj_assets.defs.cnaes_secundarias import cnaes_secundarias
from cnpj_assets.defs.completo import cnpj_completo
from cnpj_assets.defs.parquet import parquet, parquet_sensor
from cnpj_assets.defs.publication import cnpj_current
from cnpj_assets.defs.resources import LoadSettingsResource, build_resources
from cnpj_assets.export.destination import URL_VARIABLE
from cnpj_assets.instance import get_instance
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.postgres.tables import LINEAGE_COLUMN
from cnpj_assets.specs import TABLES, ColumnKind
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.conftest import RELEASE, stop_and_wait
from cnpj_assets_tests.helpers import database_of_its_own, query
from cnpj_assets_tests.oracle import read_table

OLDER = "2026-09"  # loaded after RELEASE: kept, not shown by cnpj_current
UNCHECKED = "2026-08"  # one lookup loaded, never put to publication
LOAD_ASSETS = [*TABLE_ASSETS, cnaes_secundarias, cnpj_completo, changes, cnpj_current]


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    with database_of_its_own(postgres_server, "cnpj_parquet") as own:
        yield own


def _load(
    server: ServerUrl, landing: Path, release: str, scratch: Path, assets: list
) -> dg.ExecuteInProcessResult:
    """The release's assets in sub-batches of 50 rows, on the instance the CLI uses."""
    instance = get_instance(server)
    instance.add_dynamic_partitions(RELEASES.name, [release])
    resources = build_resources(str(landing))
    resources["load_settings"] = LoadSettingsResource(
        scratch_dir=str(scratch), batch_rows=200, subbatch_rows=50
    )
    result = dg.materialize(assets, instance=instance, partition_key=release, resources=resources)
    assert result.success
    return result


@pytest.fixture(scope="module")
def loaded(
    server: ServerUrl, quirks_landing: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """RELEASE published, OLDER kept, UNCHECKED only loaded; the landing of OLDER."""
    scratch = tmp_path_factory.mktemp("parquet_scratch")
    _load(server, quirks_landing, RELEASE, scratch, LOAD_ASSETS)
    older = tmp_path_factory.mktemp("parquet_older")
    write_release(release=OLDER, rows=400, out_dir=older, seed=11)
    _load(server, older, OLDER, scratch, LOAD_ASSETS)
    write_release(release=UNCHECKED, rows=100, out_dir=older, seed=12)
    cnaes = [a for a in TABLE_ASSETS if a.key.path[-1] == "cnaes"]
    _load(server, older, UNCHECKED, scratch, cnaes)
    return older


@pytest.fixture(scope="module")
def exported(loaded: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Both checked releases exported to one folder, as `cnpj-assets export` writes them."""
    root = tmp_path_factory.mktemp("parquet_out")
    for release in (RELEASE, OLDER):
        assert main(["export", "--release", release, "--out", str(root)]) == 0
    return root


def pg_rows(server: ServerUrl, table: str, release: str = RELEASE) -> Counter[tuple]:
    """The release's rows of a table, every column the files hold, as a multiset."""
    columns = [*TABLES[table].column_names, LINEAGE_COLUMN]
    statement = sql.SQL("SELECT {} FROM {} WHERE release = %s").format(
        sql.SQL(", ").join(map(sql.Identifier, columns)), sql.Identifier("cnpj", table)
    )
    with psycopg.connect(server.url) as connection:
        return Counter(connection.execute(statement, (release,)).fetchall())


def folder(root: Path, table: str, release: str = RELEASE) -> Path:
    return root / f"table={table}" / f"release={release}"


def manifest(root: Path, release: str = RELEASE) -> dict:
    return json.loads((root / "_manifests" / f"release={release}" / "manifest.json").read_text())


@pytest.mark.parametrize("table", list(TABLES))
def test_each_table_reads_back_equal_in_duckdb_and_pyarrow(
    server: ServerUrl, exported: Path, table: str
) -> None:
    """Value for value, NULLs and all, in the types a reader expects, sorted by the key."""
    spec = TABLES[table]
    expected = pg_rows(server, table)
    assert expected
    columns = [*spec.column_names, LINEAGE_COLUMN]
    arrow = pq.read_table(folder(exported, table))
    assert arrow.column_names == columns
    assert Counter(tuple(r.values()) for r in arrow.to_pylist()) == expected
    listed = ", ".join(f'"{c}"' for c in columns)
    files = f"{folder(exported, table)}/*.parquet"
    in_duckdb = duckdb.sql(f"SELECT {listed} FROM read_parquet('{files}')").fetchall()
    assert Counter(in_duckdb) == expected
    types = {ColumnKind.DATE: pa.date32(), ColumnKind.DECIMAL: pa.decimal128(20, 2)}
    for column in spec.columns:
        assert arrow.schema.field(column.name).type == types.get(column.kind, pa.string())
    key = arrow.column(spec.index_columns[0]).to_pylist()
    assert key == sorted(key)


def test_the_files_keep_accents_zeros_dates_decimals_and_nulls(exported: Path) -> None:
    """What the equality above covers is really in the files (it could pass vacuously)."""
    empresas = pq.read_table(folder(exported, "empresas")).to_pylist()
    assert any(
        r["razao_social"] and any(ord(ch) > 127 for ch in r["razao_social"]) for r in empresas
    )
    assert any(r["porte_empresa"] in ("00", "01", "03", "05") for r in empresas)
    assert any(r["capital_social"] is not None and r["capital_social"] % 1 for r in empresas)
    assert any(
        r["capital_social"] is None or r["ente_federativo_responsavel"] is None for r in empresas
    )
    estabelecimentos = pq.read_table(folder(exported, "estabelecimentos")).to_pylist()
    assert any(r["data_situacao_especial"] is None for r in estabelecimentos)
    assert any(r["data_inicio_atividade"] is not None for r in estabelecimentos)
    assert any(r["cep"] and r["cep"].startswith("0") for r in estabelecimentos)
    assert any(not r["cnpj_basico"].isdigit() for r in estabelecimentos)


def test_the_manifest_rows_and_checksums_match_the_files(
    server: ServerUrl, exported: Path, quirks_landing: Path
) -> None:
    found = manifest(exported)
    assert (found["release"], found["format"], found["schema_version"]) == (RELEASE, "parquet", 1)
    assert found["publication"]["outcome"] == "published"
    assert set(found["tables"]) == {*TABLES, "lineage"}
    for table, entry in found["tables"].items():
        assert entry["files"], table
        for file in entry["files"]:
            data = (exported / file["path"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == file["sha256"]
            assert len(data) == file["bytes"]
            metadata = pq.read_metadata(exported / file["path"])
            assert (metadata.num_rows, metadata.num_row_groups) == (
                file["rows"],
                file["row_groups"],
            )
        assert entry["rows"] == sum(f["rows"] for f in entry["files"])
        if table in TABLES:
            assert entry["rows"] == sum(pg_rows(server, table).values())
            assert entry["checks"] and all("passed" in c for c in entry["checks"])
            run = query(
                server,
                "SELECT dagster_run_id FROM cnpj_audit.table_load WHERE id = %s",
                (entry["table_load_id"],),
            )
            assert run == [(entry["load_dagster_run_id"],)]
    zips = {z["zip_name"]: z["sha256"] for z in found["source_zips"]}
    assert len(zips) == 37
    for name, sha in zips.items():
        assert hashlib.sha256((quirks_landing / RELEASE / name).read_bytes()).hexdigest() == sha


def test_a_duckdb_query_over_the_hive_layout_filters_by_release_and_table(
    server: ServerUrl, exported: Path
) -> None:
    files = f"{exported}/table=*/release=*/*.parquet"
    counted = duckdb.sql(
        f"SELECT release, count(*) FROM read_parquet('{files}', hive_partitioning = true, "
        "union_by_name = true) WHERE \"table\" = 'empresas' GROUP BY release ORDER BY release"
    ).fetchall()
    expected = [(r, sum(pg_rows(server, "empresas", r).values())) for r in (OLDER, RELEASE)]
    assert counted == expected
    one = duckdb.sql(
        f"SELECT count(*) FROM read_parquet('{files}', hive_partitioning = true, "
        f"union_by_name = true) WHERE \"table\" = 'socios' AND release = '{OLDER}'"
    ).fetchall()
    assert one == [(sum(pg_rows(server, "socios", OLDER).values()),)]


def test_the_lineage_export_joins_a_row_back_to_its_zip_and_lines(
    exported: Path, quirks_landing: Path
) -> None:
    """An establishment deep in its file, found in the files alone: its zip, sha256 and a
    line range of one sub-batch that holds its line."""
    oracle = read_table(quirks_landing, RELEASE, "estabelecimentos")
    line, record = next((ln, r) for ln, r in oracle["Estabelecimentos0.zip"].good if ln > 300)
    rows = duckdb.sql(
        f"SELECT l.zip_name, l.sha256, l.first_line, l.last_line, l.release "
        f"FROM read_parquet('{folder(exported, 'estabelecimentos')}/*.parquet') e "
        f"JOIN read_parquet('{folder(exported, 'lineage')}/*.parquet') l "
        "ON l.subbatch_id = e._subbatch_id "
        "WHERE e.cnpj_basico = $1 AND e.cnpj_ordem = $2 AND e.cnpj_dv = $3",
        params=record[:3],
    ).fetchall()
    assert len(rows) == 1
    zip_name, sha, first, last, release = rows[0]
    assert (zip_name, release) == ("Estabelecimentos0.zip", RELEASE)
    assert sha == hashlib.sha256((quirks_landing / RELEASE / zip_name).read_bytes()).hexdigest()
    assert first <= line <= last < first + 60


def test_a_refused_or_unchecked_release_is_exported_only_when_forced(
    loaded: Path, tmp_path: Path
) -> None:
    out = ["--release", UNCHECKED, "--table", "cnaes", "--out", str(tmp_path)]
    assert main(["export", *out]) == 1
    assert not (tmp_path / "table=cnaes").exists()
    assert main(["export", *out, "--force"]) == 0
    assert manifest(tmp_path, UNCHECKED)["tables"]["cnaes"]["rows"] > 0


def test_csv_export_reads_back_equal(server: ServerUrl, loaded: Path, tmp_path: Path) -> None:
    assert (
        main(
            [
                "export",
                "--release",
                RELEASE,
                "--table",
                "empresas",
                "--format",
                "csv",
                "--out",
                str(tmp_path),
            ]
        )
        == 0
    )
    path = folder(tmp_path, "empresas") / "part-00000.csv"
    spec = TABLES["empresas"]
    types = ", ".join(
        f"'{c.name}': '{'DATE' if c.kind is ColumnKind.DATE else 'DECIMAL(20,2)' if c.kind is ColumnKind.DECIMAL else 'VARCHAR'}'"
        for c in spec.columns
    )
    rows = duckdb.sql(
        f"SELECT * FROM read_csv('{path}', header = true, hive_partitioning = false, columns = {{{types}, "
        f"'{LINEAGE_COLUMN}': 'BIGINT'}})"
    ).fetchall()
    assert Counter(rows) == pg_rows(server, "empresas")
    entry = manifest(tmp_path)["tables"]["empresas"]
    assert entry["files"][0]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()


def export_asset(
    server: ServerUrl, landing: Path, release: str, url: str = ""
) -> dg.ExecuteInProcessResult:
    """`cnpj/parquet` materialized as from the launchpad, to `url` (default: the variable)."""
    return dg.materialize(
        [parquet],
        instance=get_instance(server),
        partition_key=release,
        resources=build_resources(str(landing)),
        run_config={"ops": {"cnpj__parquet": {"config": {"url": url}}}},
        raise_on_error=False,
    )


def test_the_sensor_asks_one_export_per_publication_and_the_asset_writes_it(
    server: ServerUrl, loaded: Path, tmp_path: Path
) -> None:
    instance = get_instance(server)
    first = parquet_sensor(dg.build_sensor_context(instance=instance))
    assert [r.partition_key for r in first.run_requests] == [RELEASE, OLDER]
    again = parquet_sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    assert again.run_requests == []
    result = export_asset(server, loaded, OLDER, str(tmp_path))
    assert result.success
    metadata = result.asset_materializations_for_node("cnpj__parquet")[0].metadata
    rows = sum(sum(pg_rows(server, t, OLDER).values()) for t in TABLES)
    assert metadata["dagster/row_count"].value == rows
    assert manifest(tmp_path, OLDER)["dagster_run_id"] == result.run_id
    assert not export_asset(server, loaded, UNCHECKED, str(tmp_path)).success


@pytest.fixture
def s3_server(tmp_path: Path) -> Iterator[str]:
    """A local S3-compatible server (moto) on a free port of 127.0.0.1; its endpoint."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    moto = shutil.which("moto_server", path=str(Path(sys.executable).parent))
    assert moto, "moto[server] is in the test extra"
    log = (tmp_path / "moto.log").open("w")
    process = subprocess.Popen([moto, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "moto_server did not start"
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        stop_and_wait(process.pid, 10)
        process.wait()
        log.close()


def test_an_export_to_s3_reads_back(
    server: ServerUrl, loaded: Path, s3_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """CNPJ_PARQUET_URL set to an s3:// URL with the usual credential variables."""
    for key, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(key, value)
    url = f"s3://cnpj/export?endpoint_override={s3_server}&scheme=http&allow_bucket_creation=true"
    monkeypatch.setenv(URL_VARIABLE, url)
    result = export_asset(server, loaded, RELEASE)
    assert result.success
    shown = result.asset_materializations_for_node("cnpj__parquet")[0].metadata["destination"]
    assert shown.value == "s3://cnpj/export"  # the query, where keys may go, is not shown
    filesystem, root = pafs.FileSystem.from_uri(url)
    table = pq.read_table(f"{root}/table=socios/release={RELEASE}", filesystem=filesystem)
    assert Counter(tuple(r.values()) for r in table.to_pylist()) == pg_rows(server, "socios")
    with filesystem.open_input_stream(f"{root}/_manifests/release={RELEASE}/manifest.json") as f:
        found = json.loads(f.read())
    entry = found["tables"]["socios"]["files"][0]
    with filesystem.open_input_stream(f"{root}/{entry['path']}") as f:
        assert hashlib.sha256(f.read()).hexdigest() == entry["sha256"]
