"""benchmarks/bench_full.py on a tiny release: every figure there, every projection as stated.

The benchmark's numbers go into the README and docs/performance.md as what a user must plan for, so its shape is
tested, not its speed: it loads through `cnpj-assets load` in a process of its own, and
each figure must be measured and projected to a real release by the rule it names.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

import psycopg
import pytest
from psycopg import sql

from cnpj_assets.postgres.server import ServerUrl, cnpj_home, ensure_database
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import ReleaseReport
from cnpj_assets.synthetic.scale import REAL_RELEASE_ROWS, REAL_ROWS, companies_at_scale
from cnpj_assets_tests.helpers import query

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

import bench_full  # noqa: E402
from full_figures import FIXED_BASIS, RELEASE_BASIS, SUM_BASIS, FullRun  # noqa: E402

RELEASE = "2024-06"
BENCH_DATABASE = "cnpj_bench_full"
SCALE = 0.0002  # 13,720 companies, ~42 k rows

PER_TABLE = (
    "load {}",
    "key and indexes {}",
    "rows/s {}",
    "PostgreSQL size {}",
    "PostgreSQL indexes {}",
    "Parquet size {}",
)
PHASES = {  # the job's own steps may add more (publication, changes)
    "phase: tables": RELEASE_BASIS,
    "phase: checks": RELEASE_BASIS,
    "phase: cnpj_completo": RELEASE_BASIS,
}
FIGURES = {
    "generate the release": RELEASE_BASIS,
    "generator records/s": FIXED_BASIS,
    "CPU: generate the release": RELEASE_BASIS,
    "whole load (cnpj-assets load)": RELEASE_BASIS,
    "rows/s, whole load": FIXED_BASIS,
    "CPU: cnpj-assets load": RELEASE_BASIS,
    "CPU: PostgreSQL": RELEASE_BASIS,
    "start-up (process to first event)": FIXED_BASIS,
    **PHASES,
    "after the last table": RELEASE_BASIS,
    "peak memory: cnpj-assets load": FIXED_BASIS,
    "largest member (Estabelecimentos0.zip)": "estabelecimentos rows",
    "load process while it is read": FIXED_BASIS,
    "peak memory: largest PostgreSQL process": FIXED_BASIS,
    "peak memory: PostgreSQL in all": FIXED_BASIS,
    "database growth": RELEASE_BASIS,
    "scratch at its peak": RELEASE_BASIS,
    "scratch left after the load": FIXED_BASIS,
    "data and scratch at their peak, WAL aside": RELEASE_BASIS,
    "WAL at its peak": FIXED_BASIS,
    "disk the load needed": SUM_BASIS,
    "zips": RELEASE_BASIS,
    "disk a release needs": SUM_BASIS,
    "export to Parquet (cnpj-assets export)": RELEASE_BASIS,
    "export time / whole load time": FIXED_BASIS,
    "rows/s, export": FIXED_BASIS,
    "CPU: cnpj-assets export": RELEASE_BASIS,
    "CPU: PostgreSQL during the export": RELEASE_BASIS,
    "peak memory: cnpj-assets export": FIXED_BASIS,
    "Parquet files of the release": RELEASE_BASIS,
}


@pytest.fixture(scope="module")
def bench_database(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    """A database of its own: the benchmark publishes its release, which the other
    modules' drift checks would then compare theirs with."""
    ensure_database(postgres_server, BENCH_DATABASE)
    yield ServerUrl(postgres_server.database(BENCH_DATABASE))
    with psycopg.connect(postgres_server.database("postgres"), autocommit=True) as connection:
        connection.execute(
            sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(BENCH_DATABASE))
        )


@contextmanager
def benchmark_environment(database: ServerUrl) -> Iterator[None]:
    """The benchmark's database for it and its `cnpj-assets load`; the instance's
    variables, which it sets, restored after."""
    with pytest.MonkeyPatch.context() as environment:
        environment.setenv("CNPJ_DATABASE_URL", database.url)
        for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
            environment.setenv(key, "")
        yield


class Measured(NamedTuple):
    run: FullRun
    report: ReleaseReport
    landing: Path
    log: str  # read at once: the next measured load (another test's) writes the file again


@pytest.fixture(scope="module")
def measured(bench_database: ServerUrl, tmp_path_factory: pytest.TempPathFactory) -> Measured:
    landing = tmp_path_factory.mktemp("bench_full_landing")
    with benchmark_environment(bench_database):
        run = bench_full.measure(SCALE, RELEASE, landing, interval=0.1, progress=lambda _: None)
    log = (cnpj_home() / bench_full.LOG_NAME).read_text()
    return Measured(run, ReleaseReport.load(landing / RELEASE), landing, log)


def test_every_figure_is_measured_for_every_table(
    measured: Measured,
) -> None:
    run, report, landing, _ = measured
    assert report.rows == companies_at_scale(SCALE)
    assert run.rows == {table: report.expected_loaded(table) for table in TABLES}
    per_table = {form.format(table) for form in PER_TABLE for table in TABLES}
    names = {f.name for f in run.figures}
    phases = {name for name in names if name.startswith("phase: ")}  # each kind of step
    assert names - phases == set(FIGURES) - set(PHASES) | per_table
    assert set(PHASES) <= phases
    assert all(run.figure(name).basis == RELEASE_BASIS for name in phases)
    for figure in run.figures:
        if figure.name != "scratch left after the load":
            assert figure.measured > 0, figure.name
    assert run.figure("scratch left after the load").measured == 0
    zips = sum((landing / RELEASE / f.zip).stat().st_size for f in report.files)
    assert zips <= run.figure("zips").measured < zips + 37 * 4096  # allocated blocks


def test_projections_follow_the_basis_each_figure_names(
    measured: Measured,
) -> None:
    run, report, _, _ = measured
    loaded = {table: report.expected_loaded(table) for table in TABLES}
    expected_factor = {
        FIXED_BASIS: 1.0,
        RELEASE_BASIS: REAL_RELEASE_ROWS / sum(loaded.values()),
        **{f"{t} rows": REAL_ROWS.get(t, rows) / rows for t, rows in loaded.items()},
    }
    for name, basis in FIGURES.items():
        assert run.figure(name).basis == basis, name
    for table in TABLES:
        assert run.figure(f"rows/s {table}").basis == FIXED_BASIS
        for form in (
            "load {}",
            "key and indexes {}",
            "PostgreSQL size {}",
            "PostgreSQL indexes {}",
            "Parquet size {}",
        ):
            assert run.figure(form.format(table)).basis == f"{table} rows"
    for figure in run.figures:
        if figure.basis == SUM_BASIS:
            parts = [run.figure(name) for name in figure.parts]
            assert len(parts) >= 2, figure.name
            assert figure.measured == pytest.approx(sum(p.measured for p in parts))
            assert figure.projected == pytest.approx(sum(p.projected for p in parts))
        else:
            assert figure.factor == pytest.approx(expected_factor[figure.basis]), figure.name
            assert figure.projected == pytest.approx(figure.measured * figure.factor)
    saved = json.loads(run.to_json())
    assert [(f["name"], f["projected"]) for f in saved["figures"]] == [
        (f.name, f.projected) for f in run.figures
    ]


def assert_cleaned_up(database: ServerUrl) -> None:
    """No table of the benchmark's release is left, nor its scratch folder."""
    left = query(
        database,
        "SELECT relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = 'cnpj' AND relname LIKE %s",
        ("%" + RELEASE.replace("-", "_") + "%",),
    )
    assert left == []
    assert not (cnpj_home() / "scratch").exists()


def test_it_drops_the_release_and_removes_the_scratch(
    measured: Measured, bench_database: ServerUrl
) -> None:
    assert_cleaned_up(bench_database)
    assert "load_release" in measured.log


def test_a_load_that_would_leave_too_little_disk_is_stopped(
    measured: Measured, bench_database: ServerUrl
) -> None:
    landing = measured.landing  # the release is there: only the load runs
    with (
        benchmark_environment(bench_database),
        pytest.raises(RuntimeError, match="stopped the load: .* bytes free"),
    ):
        bench_full.measure(SCALE, RELEASE, landing, progress=lambda _: None, min_free_disk=2**62)
    assert_cleaned_up(bench_database)
