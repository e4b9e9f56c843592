"""A release at a given scale, loaded as a user loads it: time, memory and disk to plan for.

Usage: python benchmarks/bench_full.py --scale 0.25 [--landing DIR] [--json PATH]
                                        [--min-free-gib 5]

Writes a synthetic release `--scale` times a real one (`cnpj-assets fake-release
--scale`, with the real-world quirks; reused from `--landing` when it is already there
at that scale), then runs `cnpj-assets load` on it in a process of its own, as a user
would: the declared `load_release` job (tables, checks, cnpj_completo) on the project's
Dagster instance and PostgreSQL (`CNPJ_HOME`, default ./.cnpj; the embedded server, whose
processes and data folder it samples). A separate process is what lets its memory be
measured alone: its peak comes from the kernel when it ends (wait4's ru_maxrss), and a
thread samples it, PostgreSQL's processes, the data and scratch folders and the free
disk twice a second. Reported, and projected to S = 1.0 with the formula of each:
- wall time in all and per phase (the run's event log: the span of the table steps,
  of the checks, of cnpj_completo, the time after the last table), rows/s per table,
  and the CPU of the load process and of PostgreSQL (steadier than wall time when
  the machine is shared: what compares two scales);
- peak memory of the load process, of the largest PostgreSQL process and of PostgreSQL
  in all, the largest member's size and the load's memory while it was read;
- PostgreSQL's size of each table and of its indexes, the database's growth, the zips,
  the scratch folder at its peak and the disk the run needed (a load that would leave
  less than `--min-free-gib` free is stopped);
- then `cnpj-assets export` of the published release to Parquet (in a temporary folder),
  in a process of its own as a user runs it after the publication: its time and its
  share of the load's, its CPU and PostgreSQL's, its peak memory, the files' size in all
  and per table.
Run it with a CNPJ_HOME of its own: the release it measures (default 2026-10) is loaded,
published and then dropped there. It cleans up after itself: the release's tables are
dropped, the scratch folder is removed, and so is the generated release unless
`--landing` asked to keep it, and so are the Parquet files. The load's output stays in
$CNPJ_HOME/bench_full_load.log, the export's in bench_full_export.log (overwritten by
the next run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_release import drop_release, phases  # noqa: E402
from common import RELEASE, checkpoint, postgres_cpu_seconds  # noqa: E402
from full_figures import (  # noqa: E402
    FIXED_BASIS,
    RELEASE_BASIS,
    Figure,
    FullRun,
    Projection,
    table_basis,
)
from usage_sampler import UsageSampler, folder_bytes  # noqa: E402

from cnpj_assets.instance import get_instance  # noqa: E402
from cnpj_assets.postgres.server import ServerUrl, cnpj_home, server_url  # noqa: E402
from cnpj_assets.specs import TABLES  # noqa: E402
from cnpj_assets.synthetic import ReleaseReport, write_release  # noqa: E402
from cnpj_assets.synthetic.processes import default_workers  # noqa: E402
from cnpj_assets.synthetic.scale import companies_at_scale  # noqa: E402

Progress = Callable[[str], None]
SEED = 1
PROGRESS_SECONDS = 30
LOG_NAME = "bench_full_load.log"  # kept in CNPJ_HOME: the output of the last measured load
EXPORT_LOG_NAME = "bench_full_export.log"  # and of the last measured export
BATCH_BOUND = "bounded by batch_rows and DuckDB's memory limit, not by rows"
SERVER_BOUND = "bounded by shared_buffers and maintenance_work_mem, not by rows"

TABLES_SQL = """
SELECT table_name, rows, seconds, coalesce(index_seconds, 0),
       pg_table_size(target_table::regclass), pg_indexes_size(target_table::regclass)
FROM cnpj_audit.table_load
WHERE dagster_run_id = %s AND status = 'COMPLETED' AND table_name = ANY(%s)
"""
LARGEST_MEMBER_SQL = """
SELECT f.zip_name, f.member_bytes, extract(epoch FROM f.started_at),
       extract(epoch FROM f.finished_at)
FROM cnpj_audit.file_load f JOIN cnpj_audit.table_load t ON t.id = f.table_load_id
WHERE t.dagster_run_id = %s ORDER BY f.member_bytes DESC LIMIT 1
"""
TABLES_BY_ZIP = {name: spec.name for spec in TABLES.values() for name in spec.zip_names()}


@dataclass(frozen=True)
class Generated:
    """How long writing the release took, when this run wrote it."""

    seconds: float
    records: int
    cpu_seconds: float  # this process and its worker processes


@dataclass(frozen=True)
class LoadRun:
    """The `cnpj-assets load` process: its wall time, its peak and what was sampled."""

    started: float  # epoch seconds
    ended: float
    peak_rss: int  # bytes, from the kernel when the process ended
    cpu_seconds: float  # its CPU, user and system, from the kernel when it ended
    postgres_cpu: float  # the server's processes' CPU while it ran
    run_id: str
    sampler: UsageSampler


def ensure_release(
    landing: Path, release: str, scale: float, progress: Progress
) -> Generated | None:
    """Write the release at `scale`, unless `landing` already holds it (then None)."""
    rows = companies_at_scale(scale)
    folder = landing / release
    if (folder / "quirks.json").is_file():
        found = ReleaseReport.load(folder)
        if (found.rows, found.seed, found.with_quirks) == (rows, SEED, True):
            progress(f"reusing the release in {folder} ({rows:,} companies)")
            return None
    workers = default_workers(rows)
    progress(f"writing a release of {rows:,} companies to {folder} with {workers} process(es)")
    started, cpu = time.perf_counter(), _cpu_with_children()
    report = write_release(release, rows, landing, seed=SEED, quirks=True, progress=progress)
    return Generated(
        time.perf_counter() - started,
        sum(f.records for f in report.files),
        _cpu_with_children() - cpu,
    )


def _cpu_with_children() -> float:
    """CPU of this process and of its children that ended (the generator's workers)."""
    return sum(
        usage.ru_utime + usage.ru_stime
        for usage in map(resource.getrusage, (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    )


def postmaster_pid(data_dir: Path) -> int:
    """The embedded server's main process: what the memory of PostgreSQL is sampled under."""
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.is_file():
        raise SystemExit(
            f"bench_full.py samples the embedded PostgreSQL under {data_dir}, and found no "
            "postmaster.pid there: unset CNPJ_DATABASE_URL, or set CNPJ_HOME to the home of "
            "the server it points at"
        )
    return int(pid_file.read_text().split()[0])


def _status_line(sampler: UsageSampler, started: float, log: Path) -> str:
    now = sampler.take()
    first = sampler.samples[0]
    lines = log.read_text(errors="replace").strip().splitlines()
    return (
        f"{time.time() - started:,.0f} s: load process {now.load_rss / 2**20:,.0f} MiB, "
        f"PostgreSQL data +{(now.data_bytes - first.data_bytes) / 2**30:,.2f} GiB, scratch "
        f"{now.scratch_bytes / 2**30:,.2f} GiB, free disk {now.free_disk / 2**30:,.1f} GiB"
        + (f"; {lines[-1][:160]}" if lines else "")
    )


def run_load(
    instance: dg.DagsterInstance,
    release: str,
    landing: Path,
    data_dir: Path,
    interval: float,
    log: Path,
    progress: Progress,
    min_free_disk: int,
) -> LoadRun:
    """Run `cnpj-assets load` in its own process, sampled until it ends.

    A load that would leave less than `min_free_disk` free is stopped: the machine is
    shared, and a projection can be wrong.
    """
    filters = dg.RunsFilter(job_name="load_release", tags={"dagster/partition": release})
    runs_before = set(instance.get_run_ids(filters))
    command = [sys.executable, "-m", "cnpj_assets.cli", "load"]
    command += ["--release", release, "--landing", str(landing)]
    with log.open("w") as output:
        started = time.time()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        postmaster = postmaster_pid(data_dir)
        postgres_cpu = postgres_cpu_seconds(postmaster)
        sampler = UsageSampler(process.pid, postmaster, data_dir, cnpj_home() / "scratch", interval)
        sampler.start()
        next_report = time.monotonic() + PROGRESS_SECONDS
        while True:
            pid, status, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:
                break
            if sampler.samples[-1].free_disk < min_free_disk:
                process.terminate()
                os.waitpid(process.pid, 0)
                sampler.stop()
                raise RuntimeError(
                    f"stopped the load: {sampler.samples[-1].free_disk:,} bytes free on "
                    f"{data_dir}'s file system, under the {min_free_disk:,} kept for the machine"
                )
            if time.monotonic() >= next_report:
                progress(_status_line(sampler, started, log))
                next_report += PROGRESS_SECONDS
            time.sleep(0.2)
        ended = time.time()
        postgres_cpu = postgres_cpu_seconds(postmaster) - postgres_cpu
        sampler.stop()
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"cnpj-assets load exited with {process.returncode}:\n{tail}")
    (run_id,) = set(instance.get_run_ids(filters)) - runs_before
    cpu = usage.ru_utime + usage.ru_stime
    return LoadRun(started, ended, usage.ru_maxrss * 1024, cpu, postgres_cpu, run_id, sampler)


@dataclass(frozen=True)
class ExportRun:
    """`cnpj-assets export` of the loaded release to Parquet, after the load."""

    seconds: float
    cpu_seconds: float  # its CPU, user and system, from the kernel when it ended
    postgres_cpu: float
    peak_rss: int  # bytes
    table_bytes: dict[str, int]  # each table's files, from the manifest
    bytes: int  # every file, the lineage and the manifest included


def run_export(release: str, out: Path, postmaster: int, log: Path) -> ExportRun:
    """Export the release as a user would, in a process of its own: off the load's path,
    so its time is what a user waits for after the publication."""
    command = [sys.executable, "-m", "cnpj_assets.cli", "export", "--release", release]
    command += ["--out", str(out)]
    with log.open("w") as output:
        postgres_cpu = postgres_cpu_seconds(postmaster)
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - started
        postgres_cpu = postgres_cpu_seconds(postmaster) - postgres_cpu
    if os.waitstatus_to_exitcode(status) != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise RuntimeError(f"cnpj-assets export failed:\n{tail}")
    manifest = json.loads((out / "_manifests" / f"release={release}" / "manifest.json").read_text())
    tables = {name: entry["bytes"] for name, entry in manifest["tables"].items() if name in TABLES}
    return ExportRun(
        seconds,
        usage.ru_utime + usage.ru_stime,
        postgres_cpu,
        usage.ru_maxrss * 1024,
        tables,
        folder_bytes(out),
    )


def export_figures(projection: Projection, export: ExportRun, load: LoadRun) -> list[Figure]:
    """The export's time (and its share of the load's), CPU, memory and each table's size."""
    figure = projection.figure
    found = [
        figure("export to Parquet (cnpj-assets export)", "s", export.seconds, RELEASE_BASIS),
        figure(
            "export time / whole load time",
            "%",
            100 * export.seconds / (load.ended - load.started),
            FIXED_BASIS,
            "both grow with the rows",
        ),
        figure(
            "rows/s, export", "rows/s", projection.loaded / export.seconds, FIXED_BASIS, "a rate"
        ),
        figure("CPU: cnpj-assets export", "core-s", export.cpu_seconds, RELEASE_BASIS),
        figure("CPU: PostgreSQL during the export", "core-s", export.postgres_cpu, RELEASE_BASIS),
        figure(
            "peak memory: cnpj-assets export",
            "bytes",
            export.peak_rss,
            FIXED_BASIS,
            "bounded by the row group size, not by rows",
        ),
        figure("Parquet files of the release", "bytes", export.bytes, RELEASE_BASIS),
    ]
    found += [
        figure(f"Parquet size {name}", "bytes", size, table_basis(name))
        for name, size in export.table_bytes.items()
    ]
    return found


def database_bytes(server: ServerUrl) -> int:
    with psycopg.connect(server.url) as connection:
        return connection.execute("SELECT pg_database_size(current_database())").fetchone()[0]


@dataclass(frozen=True)
class Audit:
    """What the run's audit says: per table (name, rows, seconds, index seconds, table and
    index bytes) and its largest member (zip, bytes, start and end in epoch seconds)."""

    tables: list[tuple[str, int, float, float, int, int]]
    largest_member: tuple[str, int, float, float]

    @classmethod
    def of(cls, server: ServerUrl, run_id: str) -> Audit:
        with psycopg.connect(server.url) as connection:
            found = connection.execute(TABLES_SQL, (run_id, list(TABLES))).fetchall()
            zip_name, size, start, end = connection.execute(
                LARGEST_MEMBER_SQL, (run_id,)
            ).fetchone()
        order = list(TABLES)
        tables = sorted(found, key=lambda row: order.index(row[0]))
        return cls(tables, (zip_name, size, float(start), float(end)))


def time_figures(
    projection: Projection,
    instance: dg.DagsterInstance,
    load: LoadRun,
    audit: Audit,
    generated: Generated | None,
) -> list[Figure]:
    """The release's generation, the load in all and per phase, and each table's speed."""
    figure = projection.figure
    logs = instance.all_logs(load.run_id)
    spans = phases(instance, load.run_id)
    found = []
    if generated is not None:
        rate = generated.records / generated.seconds
        found += [
            figure("generate the release", "s", generated.seconds, RELEASE_BASIS),
            figure("generator records/s", "rows/s", rate, FIXED_BASIS, "a rate"),
            figure("CPU: generate the release", "core-s", generated.cpu_seconds, RELEASE_BASIS),
        ]
    seconds = load.ended - load.started
    rows = sum(row[1] for row in audit.tables)
    found += [
        figure("whole load (cnpj-assets load)", "s", seconds, RELEASE_BASIS),
        figure("rows/s, whole load", "rows/s", rows / seconds, FIXED_BASIS, "a rate"),
        figure("CPU: cnpj-assets load", "core-s", load.cpu_seconds, RELEASE_BASIS),
        figure("CPU: PostgreSQL", "core-s", load.postgres_cpu, RELEASE_BASIS),
        figure(
            "start-up (process to first event)",
            "s",
            logs[0].timestamp - load.started,
            FIXED_BASIS,
            "starting Python and Dagster, whatever the rows",
        ),
        *(figure(f"phase: {name}", "s", span.span, RELEASE_BASIS) for name, span in spans.items()),
        figure(
            "after the last table",
            "s",
            logs[-1].timestamp - logs[0].timestamp - spans["tables"].end,
            RELEASE_BASIS,
        ),
    ]
    for name, rows, seconds, index_seconds, _, _ in audit.tables:
        found += [
            figure(f"load {name}", "s", seconds, table_basis(name)),
            figure(f"key and indexes {name}", "s", index_seconds, table_basis(name)),
            figure(f"rows/s {name}", "rows/s", rows / seconds, FIXED_BASIS, "a rate"),
        ]
    return found


def memory_figures(projection: Projection, load: LoadRun, audit: Audit) -> list[Figure]:
    """Peaks of the load process and of PostgreSQL, and the largest member's read."""
    figure, sampler = projection.figure, load.sampler
    zip_name, size, start, end = audit.largest_member
    return [
        figure("peak memory: cnpj-assets load", "bytes", load.peak_rss, FIXED_BASIS, BATCH_BOUND),
        figure(f"largest member ({zip_name})", "bytes", size, table_basis(TABLES_BY_ZIP[zip_name])),
        figure(
            "load process while it is read",
            "bytes",
            sampler.peak("load_rss", start, end),
            FIXED_BASIS,
            BATCH_BOUND,
        ),
        figure(
            "peak memory: largest PostgreSQL process",
            "bytes",
            sampler.peak("postgres_process_peak"),
            FIXED_BASIS,
            SERVER_BOUND,
        ),
        figure(
            "peak memory: PostgreSQL in all",
            "bytes",
            max(s.postgres_private + s.postgres_shared for s in sampler.samples),
            FIXED_BASIS,
            SERVER_BOUND,
        ),
    ]


def disk_figures(
    projection: Projection, load: LoadRun, audit: Audit, zips_bytes: int, database_growth: int
) -> list[Figure]:
    """Each table's and index's size, the zips, the scratch and the disk the run took.

    The disk the load needed is split where its parts grow differently: the tables, the
    temporary files of the index builds and the scratch members grow with the rows, the
    WAL stays under max_wal_size.
    """
    figure, samples = projection.figure, load.sampler.samples
    found = []
    for name, _, _, _, table_bytes, index_bytes in audit.tables:
        found += [
            figure(f"PostgreSQL size {name}", "bytes", table_bytes, table_basis(name)),
            figure(f"PostgreSQL indexes {name}", "bytes", index_bytes, table_basis(name)),
        ]
    first = samples[0]
    beyond_wal = max(s.data_bytes - s.wal_bytes + s.scratch_bytes for s in samples) - (
        first.data_bytes - first.wal_bytes + first.scratch_bytes
    )
    data = figure("data and scratch at their peak, WAL aside", "bytes", beyond_wal, RELEASE_BASIS)
    wal = figure(  # all of it, not its growth: a busy server keeps its WAL segments
        "WAL at its peak",
        "bytes",
        max(s.wal_bytes for s in samples),
        FIXED_BASIS,
        "bounded by max_wal_size, not by rows",
    )
    zips = figure("zips", "bytes", zips_bytes, RELEASE_BASIS)
    load_disk = Projection.total("disk the load needed", [data, wal])
    found += [
        figure("database growth", "bytes", database_growth, RELEASE_BASIS),
        figure("scratch at its peak", "bytes", load.sampler.peak("scratch_bytes"), RELEASE_BASIS),
        figure(
            "scratch left after the load",
            "bytes",
            samples[-1].scratch_bytes,
            FIXED_BASIS,
            "the loader removes each member",
        ),
        data,
        wal,
        load_disk,
        zips,
        Projection.total("disk a release needs", [zips, load_disk]),
    ]
    return found


def measure(
    scale: float,
    release: str = RELEASE,
    landing: Path | None = None,
    interval: float = 0.5,
    progress: Progress = print,
    min_free_disk: int = 5 * 1024**3,
) -> FullRun:
    """Generate (or reuse) the release, load it as the CLI does, measure, then clean up."""
    server = server_url()
    instance = get_instance(server)
    data_dir = cnpj_home() / "pgdata"
    postmaster_pid(data_dir)
    progress(f"PostgreSQL: {server.redacted()}; free disk {shutil.disk_usage(data_dir).free:,}")
    with tempfile.TemporaryDirectory(prefix="bench_full_") as work:
        folder = landing or Path(work) / "landing"
        generated = ensure_release(folder, release, scale, progress)
        zips_bytes = folder_bytes(folder / release)
        try:
            drop_release(server, release)
            checkpoint(server)
            database_before = database_bytes(server)
            log = cnpj_home() / LOG_NAME
            progress(f"cnpj-assets load --release {release}: its output goes to {log}")
            load = run_load(
                instance, release, folder, data_dir, interval, log, progress, min_free_disk
            )
            audit = Audit.of(server, load.run_id)
            database_growth = database_bytes(server) - database_before
            progress(
                f"cnpj-assets export --release {release}: its output goes to {EXPORT_LOG_NAME}"
            )
            export = run_export(
                release,
                Path(work) / "parquet",
                postmaster_pid(data_dir),
                cnpj_home() / EXPORT_LOG_NAME,
            )
        finally:
            drop_release(server, release)
            shutil.rmtree(cnpj_home() / "scratch", ignore_errors=True)
    projection = Projection({name: rows for name, rows, *_ in audit.tables})
    samples = load.sampler.samples
    figures = [
        *time_figures(projection, instance, load, audit, generated),
        *memory_figures(projection, load, audit),
        *disk_figures(projection, load, audit, zips_bytes, database_growth),
        *export_figures(projection, export, load),
    ]
    return FullRun(
        scale=scale,
        release=release,
        date=dt.date.today().isoformat(),
        cores=len(os.sched_getaffinity(0)),
        memory_bytes=os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"),
        rows=projection.rows,
        free_disk_drop=samples[0].free_disk - min(s.free_disk for s in samples),
        figures=figures,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", type=float, required=True, help="1.0: a real release")
    parser.add_argument("--release", default=RELEASE, help="YYYY-MM to write and load")
    parser.add_argument("--landing", help="keep (and reuse) the release here, not in a temp dir")
    parser.add_argument("--json", help="also write the figures as JSON to this file")
    parser.add_argument(
        "--min-free-gib", type=float, default=5, help="stop the load below this much free disk"
    )
    args = parser.parse_args()
    landing = Path(args.landing).resolve() if args.landing else None
    run = measure(
        args.scale,
        args.release,
        landing,
        progress=lambda line: print(line, flush=True),
        min_free_disk=int(args.min_free_gib * 1024**3),
    )
    print(run.render())
    if args.json:
        Path(args.json).write_text(run.to_json() + "\n")


if __name__ == "__main__":
    main()
