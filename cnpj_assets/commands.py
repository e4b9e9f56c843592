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
from cnpj_assets.assets import RELEASES
from cnpj_assets.declared_runs import execute_declared_job
from cnpj_assets.definitions import release_download_job, release_job
from cnpj_assets.instance import get_instance, instance_environment, prepare_instance_home
from cnpj_assets.landing import default_landing_dir, discover_release, validate_release_name
from cnpj_assets.postgres.control import embedded_server
from cnpj_assets.postgres.server import ServerUrl, server_url
from cnpj_assets.snapshot import expected_zip_names

SUMMARY_SQL = """
SELECT table_name, status, rows, rejects, duplicate_keys, seconds, target_table
FROM cnpj_audit.table_load WHERE dagster_run_id = %s ORDER BY id
"""

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


def run_release_job(
    job: Callable[[], dg.JobDefinition], release: str, landing: Path
) -> dg.ExecutionResult:
    """Add the partition and execute a declared job of the code location on the instance.

    The declared job, not an ad-hoc selection, in a run that names its code location:
    the UI can re-execute it, and it runs with the job's own executor.
    """
    validate_release_name(release)
    server = server_url()
    instance = get_instance(server)
    instance.add_dynamic_partitions(RELEASES.name, [release])
    print(f"PostgreSQL: {server.redacted()}", flush=True)
    print(f"Dagster instance: {os.environ['DAGSTER_HOME']}", flush=True)
    return execute_declared_job(
        job, instance, release_run_config(landing), {"dagster/partition": release}
    )


def load_release(release: str, landing: Path) -> int:
    """Run the `load_release` job on a release in the landing folder: tables, checks,
    cnpj_completo."""
    discover_release(landing, release)
    result = run_release_job(release_job, release, landing)
    print_summary(server_url(), result.run_id)
    if not result.success:
        print(f"load of {release} FAILED; see the run {result.run_id} in `cnpj-assets ui`")
        return 1
    return 0


def download(release: str, landing: Path) -> int:
    """Run the `download_release` job: the release's 37 zips into the landing folder."""
    result = run_release_job(release_download_job, release, landing)
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


def print_summary(server: ServerUrl, run_id: str) -> None:
    with psycopg.connect(server.url) as connection:
        rows = connection.execute(SUMMARY_SQL, (run_id,)).fetchall()
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
    home = prepare_instance_home(server)
    os.environ.setdefault("CNPJ_LANDING_DIR", str(default_landing_dir()))
    dg_cli = shutil.which("dg") or str(Path(sys.executable).with_name("dg"))
    command = [dg_cli, "dev", "-w", str(home / "workspace.yaml"), "-p", str(port)]
    print(f"Dagster UI on http://127.0.0.1:{port} (instance {home})", flush=True)
    return subprocess.call(command)
