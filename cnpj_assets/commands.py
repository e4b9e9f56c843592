"""What the CLI's commands do, apart from parsing arguments."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psycopg

from cnpj_assets import lineage
from cnpj_assets.audit.schema import AUDIT_SCHEMA
from cnpj_assets.declared_runs import execute_declared_job
from cnpj_assets.definitions import (
    release_after_publication_job,
    release_download_job,
    release_job,
)
from cnpj_assets.defs.assets import RELEASES
from cnpj_assets.export.destination import resolve, shown_url
from cnpj_assets.export.release import export_release
from cnpj_assets.instance import get_instance, instance_environment
from cnpj_assets.landing import default_landing_dir, validate_release_name
from cnpj_assets.postgres.access import check_access
from cnpj_assets.postgres.control import embedded_server
from cnpj_assets.postgres.server import ServerUrl, server_url
from cnpj_assets.postgres.tables import SCHEMA
from cnpj_assets.read.search_functions import missing_right
from cnpj_assets.releases.precheck import checked_release
from cnpj_assets.releases.publication import CURRENT_SCHEMA
from cnpj_assets.runs.healing import heal_dead_runs
from cnpj_assets.runs.lost_server import (
    ServerLost,
    collapsed_storage_retries,
    lost_server,
    reason_of,
)
from cnpj_assets.snapshot import expected_zip_names

PUBLICATION_SQL = (
    "SELECT outcome, reason FROM cnpj_audit.publication WHERE dagster_run_id = %s "
    "ORDER BY id DESC LIMIT 1"
)
SUMMARY_SQL = """
SELECT table_name, status, rows, rejects, duplicate_keys, seconds, target_table
FROM cnpj_audit.table_load WHERE dagster_run_id = %s ORDER BY id
"""

DATA_SCHEMAS = [SCHEMA, AUDIT_SCHEMA, CURRENT_SCHEMA]
EXIT_STOPPED = 130  # the shell's code for a command ended by Ctrl-C

EXAMPLE_CNPJ_SQL = """
SELECT cnpj_basico || cnpj_ordem || cnpj_dv FROM cnpj.estabelecimentos
WHERE release = %s AND nome_fantasia IS NOT NULL ORDER BY cnpj_basico LIMIT 1
"""


def release_run_config(landing: Path) -> dict:
    """The run config of a CLI load: its landing folder, and INFO on the console."""
    return {
        "resources": {"landing": {"config": {"landing_dir": str(landing)}}},
        "loggers": {"console": {"config": {"log_level": "INFO"}}},
    }


def execute_release_job(
    instance: dg.DagsterInstance,
    release: str,
    landing: Path,
    job: Callable[[], dg.JobDefinition] = release_job,
) -> dg.ExecutionResult:
    """Execute a declared job of the code location on one release, in this process.

    The declared job, not an ad-hoc selection, in a run that names its code location:
    the UI can re-execute it, and it runs with the job's own executor.
    """
    return execute_declared_job(
        job, instance, release_run_config(landing), {"dagster/partition": release}
    )


def run_release_job(
    job: Callable[[], dg.JobDefinition], release: str, landing: Path, command: str
) -> tuple[ServerUrl, dg.ExecutionResult]:
    """Check the role's rights, heal runs that died, add the partition and run the job."""
    validate_release_name(release)
    server = server_url()
    check_access(server.url, DATA_SCHEMAS)
    with psycopg.connect(server.url) as connection:
        search_problem = missing_right(connection)
    if search_problem:
        print(f"warning: {search_problem}; loads and publication go on without it", flush=True)
    instance = get_instance(server)
    print(f"PostgreSQL: {server.redacted()}", flush=True)
    print(f"Dagster instance: {os.environ['DAGSTER_HOME']}", flush=True)
    heal_dead_runs(instance)
    instance.add_dynamic_partitions(RELEASES.name, [release])
    return server, run_on(server, instance, job, release, landing, command)


def run_on(
    server: ServerUrl,
    instance: dg.DagsterInstance,
    job: Callable[[], dg.JobDefinition],
    release: str,
    landing: Path,
    command: str,
) -> dg.ExecutionResult:
    """Run the job on the release. A server lost during the run ends it with one line (a
    ServerLost naming `command`, which resumes), not a traceback."""
    with collapsed_storage_retries():
        try:
            return execute_release_job(instance, release, landing, job)
        except Exception as error:
            if not lost_server(error):
                raise
            raise ServerLost(
                f"PostgreSQL ({server.redacted()}) was lost while {command}ing {release} "
                f"({reason_of(error)}); the run could not record its end. The next "
                f"`cnpj-assets {command} --release {release}` marks it failed, frees its pool "
                "slots and resumes from what was committed"
            ) from None


def load_release(release: str, landing: Path) -> int:
    """Run the `load_release` job on a release in the landing folder: tables, checks,
    changes, cnpj_completo, publication.

    The folder is checked first (all 37 readable zips), before any partition or run.
    """
    checked_release(landing, release)
    server, result = run_release_job(release_job, release, landing, "load")
    print_summary(server, result.run_id)
    print_publication(server, result.run_id, release)
    if result.dagster_run.status == dg.DagsterRunStatus.CANCELED:
        print(
            f"load of {release} stopped; the next `cnpj-assets load --release {release}` resumes "
            "each table from its committed sub-batches"
        )
        return EXIT_STOPPED
    if not result.success:
        print_failures(result)
        print(f"load of {release} FAILED; see the run {result.run_id} in `cnpj-assets ui`")
        return 1
    return build_after_publication(server, release, landing)


def build_after_publication(server: ServerUrl, release: str, landing: Path) -> int:
    """Run `after_publication` on the loaded release: what speeds up reading it, built
    while readers already see it."""
    print(
        f"\nbuilding cnaes_secundarias and the search indexes of {release} (readers of "
        "cnpj_current are not kept waiting: they are read without them until then)",
        flush=True,
    )
    instance = get_instance(server)
    result = run_on(server, instance, release_after_publication_job, release, landing, "load")
    if not result.success:
        print_failures(result)
        print(
            f"after_publication of {release} FAILED (cnpj_current answers, slower: "
            f"docs/reading.md); see the run {result.run_id} in `cnpj-assets ui`"
        )
        return 1
    print(f"{release}: cnaes_secundarias and search indexes built (docs/search.md)")
    return 0


def download(release: str, landing: Path) -> int:
    """Run the `download_release` job: the release's 37 zips into the landing folder."""
    _, result = run_release_job(release_download_job, release, landing, "download")
    if not result.success:
        print(f"download of {release} FAILED; see the run {result.run_id} in `cnpj-assets ui`")
        return 1
    print(f"{release}: {len(expected_zip_names())} zips in {landing / release}")
    print(f"load it: cnpj-assets load --release {release} --landing {landing}")
    return 0


def print_server_note() -> None:
    """Say that the embedded server outlives the command, and how to stop it."""
    server = embedded_server()
    if not os.environ.get("CNPJ_DATABASE_URL") and server.running:
        print(
            f"\nThe embedded PostgreSQL (pid {server.pid}) keeps running for the next command "
            "and the UI; stop it with: cnpj-assets server stop"
        )


def env() -> int:
    """Print the exports that point Dagster's own CLI (`dagster`, `dg`) at the project."""
    for name, value in instance_environment(server_url()).items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def add_partitions(releases: list[str]) -> int:
    """Add `cnpj_release` partitions, so Dagster's CLI can materialize or backfill them."""
    for release in releases:
        validate_release_name(release)
    instance = get_instance(server_url())
    instance.add_dynamic_partitions(RELEASES.name, releases)
    known = instance.get_dynamic_partitions(RELEASES.name)
    print(f"partitions of {RELEASES.name}: {', '.join(sorted(known))}")
    return 0


def _read_audit(server: ServerUrl, statement: str, params: tuple, what: str) -> list[tuple] | None:
    """The audit's rows for a run's closing lines; None when there is no audit yet (the
    failures printed after say why) or the server cannot be read (said in a line)."""
    try:
        with psycopg.connect(server.url) as connection:
            return connection.execute(statement, params).fetchall()
    except psycopg.errors.UndefinedTable:
        return None
    except psycopg.OperationalError as error:
        print(f"(no {what}: PostgreSQL cannot be read: {reason_of(error)})")
        return None


def print_summary(server: ServerUrl, run_id: str) -> None:
    """The run's tables from the audit; a word instead when the audit cannot be read."""
    rows = _read_audit(server, SUMMARY_SQL, (run_id,), "summary")
    if rows is None:
        return
    header = (
        f"{'table':<16} {'status':<10} {'rows':>12} {'rejects':>8} {'dup keys':>8} "
        f"{'s':>7} {'rows/s':>10}"
    )
    print("\n" + header + "\n" + "-" * len(header))
    for table, status, count, rejects, duplicates, seconds, _target in rows:
        rate = count / seconds if seconds else 0
        print(
            f"{table:<16} {status:<10} {count:>12,} {rejects:>8,} {duplicates or 0:>8,} "
            f"{seconds or 0:>7.1f} {rate:>10,.0f}"
        )


def print_publication(server: ServerUrl, run_id: str, release: str) -> None:
    """What the run's publication step decided, in one line."""
    rows = _read_audit(server, PUBLICATION_SQL, (run_id,), "publication")
    if not rows:
        print(f"\n{release} was not considered for publication (the run stopped before)")
    elif rows[0][0] == "published":
        print(f"\n{release} published: cnpj_current shows it ({rows[0][1]})")
    else:
        print(f"\n{release} {rows[0][0]}: {rows[0][1]}")


def print_failures(result: dg.ExecutionResult) -> None:
    """Each failed step's error in one line, so the real error is the last thing read."""
    for event in result.all_events:
        if event.event_type_value == "STEP_FAILURE" and event.step_failure_data:
            error = event.step_failure_data.error
            cause = error.cause if error and error.cause else error
            if cause is not None:
                print(f"{event.step_key} failed: {cause.message.strip().splitlines()[0]}")


def print_lineage_example(server: ServerUrl, release: str) -> None:
    """One establishment of the release traced back to its file, lines and run."""
    with psycopg.connect(server.url) as connection:
        row = connection.execute(EXAMPLE_CNPJ_SQL, (release,)).fetchone()
    if row is not None:
        print(f"\nLineage example: cnpj-assets lineage {row[0]}")
        lineage.run(row[0], database_url=server.url)


def demo(rows: int) -> int:
    """Make a fake release with quirks, load it, print the summary and one lineage."""
    from cnpj_assets.synthetic import write_release

    landing = default_landing_dir()
    release = "2026-10"
    print(f"Writing a synthetic release {release} ({rows:,} companies, with quirks) to {landing}")
    write_release(release=release, rows=rows, out_dir=landing, seed=0, quirks=True)
    status = load_release(release, landing)
    if status == 0:
        print_lineage_example(server_url(), release)
        print('\nSee it in the UI: cnpj-assets ui   |   in SQL: psql "$(cnpj-assets db-url)"')
    return status


def ui(port: int) -> int:
    """Run `dg dev` (webserver, daemon, code server) on the project's instance and location."""
    server = server_url()
    check_access(server.url, DATA_SCHEMAS)
    get_instance(server)
    home = Path(os.environ["DAGSTER_HOME"])
    os.environ.setdefault("CNPJ_LANDING_DIR", str(default_landing_dir()))
    dg_cli = shutil.which("dg") or str(Path(sys.executable).with_name("dg"))
    command = [dg_cli, "dev", "-w", str(home / "workspace.yaml"), "-p", str(port)]
    print(f"Dagster UI on http://127.0.0.1:{port} (instance {home})", flush=True)
    return subprocess.call(command)


def export(release: str, tables: list[str] | None, file_format: str, out: str, force: bool) -> int:
    """Write whole tables of a release (default all, with their lineage) and its manifest."""
    validate_release_name(release)
    destination = resolve(out)
    done = export_release(server_url().url, release, destination, file_format, tables, force=force)
    rows = sum(t.rows for t in done.tables if t.table_load_id is not None)
    size = sum(t.bytes for t in done.tables)
    print(
        f"{release}: {rows:,} rows in {size:,} bytes of {file_format} in {done.seconds:.1f} s; "
        f"manifest {shown_url(destination.url).rstrip('/')}/{done.manifest_path}"
    )
    return 0


def releases(as_json: bool) -> int:
    """Print every release the database knows, one line each (or JSON)."""
    from cnpj_assets.audit.schema import ensure_audit_schema
    from cnpj_assets.releases.status import release_statuses, releases_json

    with psycopg.connect(server_url().url, autocommit=True) as connection:
        ensure_audit_schema(connection)
        statuses = release_statuses(connection)
    if as_json:
        print(releases_json(statuses))
        return 0
    for status in statuses:
        print(status.line())
    if not statuses:
        print("no release loaded yet")
    return 0
