"""Whole-job benchmark: what a user waits for (`cnpj-assets load`) against the tables alone.

Usage: python benchmarks/bench_release.py --rows 1000000 [--rounds 3] [--landing DIR]

Writes a synthetic release of `--rows` companies (as `cnpj-assets fake-release --rows`
does: ~3 M rows in all for 1 M), then, in each round, runs two jobs through the path of
`cnpj-assets load` (the declared job on the project's Dagster instance and PostgreSQL,
with its executor, in this process):
- tables only: the ten table assets, no checks, no cnpj_completo (the reference);
- the whole job: `load_release`, tables, every check, changes, cnpj_completo and the
  publication: what a user waits for until cnpj_current shows the release;
- then `after_publication` (cnaes_secundarias), which `cnpj-assets load` runs after the
  publication: timed on its own, readers already see the release while it runs.
Each starts as a first load (the release's tables are dropped before it, untimed, and
a CHECKPOINT runs), and is measured for its wall time, the share of the cores busy
(/proc/stat: this process and PostgreSQL together), the CPU of this process and of
PostgreSQL, and its peak memory (this process: the job's steps run in its threads).
The whole job is split into phases from its event log: the span of the table steps,
of the check steps, of cnpj_completo, and the time it ran after the last table ended.
Printed last: the projection of the whole job to a full release (its seconds per row
times the rows of a real release, cnpj-layout.md; the synthetic tables have the real
proportions) and the median over rounds of `whole/tables ratio` (lower is better,
1.00 means the checks and cnpj_completo cost nothing a user waits for).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    RELEASE,
    BusyCores,
    checkpoint,
    drop_release_tables,
    peak_rss_mib,
    postgres_cpu_seconds,
    process_cpu_seconds,
    reset_peak_rss,
)

from cnpj_assets.commands import release_run_config  # noqa: E402
from cnpj_assets.definitions import (  # noqa: E402
    defs,
    release_after_publication_job,
    release_job,
)
from cnpj_assets.defs.assets import RELEASES, TABLE_ASSETS  # noqa: E402
from cnpj_assets.defs.executor import threaded_executor  # noqa: E402
from cnpj_assets.instance import get_instance  # noqa: E402
from cnpj_assets.postgres.server import ServerUrl, server_url  # noqa: E402
from cnpj_assets.read.cnaes_secundarias import CNAES_SECUNDARIAS  # noqa: E402
from cnpj_assets.read.completo_view import COMPLETO  # noqa: E402
from cnpj_assets.releases.changes import CHANGES  # noqa: E402
from cnpj_assets.specs import TABLES  # noqa: E402
from cnpj_assets.synthetic import write_release  # noqa: E402
from cnpj_assets.synthetic.scale import REAL_RELEASE_ROWS  # noqa: E402

TABLES_ONLY = dg.define_asset_job(
    "bench_tables_only",
    selection=dg.AssetSelection.assets(*TABLE_ASSETS).without_checks(),
    executor_def=threaded_executor,
)
BENCH_DEFS = dg.Definitions(assets=[*TABLE_ASSETS], jobs=[TABLES_ONLY], resources=defs.resources)


def tables_only_job() -> dg.JobDefinition:
    """The ten table assets alone, with the release job's executor and resources."""
    return BENCH_DEFS.resolve_job_def(TABLES_ONLY.name)


@dataclass(frozen=True)
class Phase:
    """Steps of one kind in a run: from the first start to the last end, and their sum."""

    start: float
    end: float
    step_seconds: float

    @property
    def span(self) -> float:
        return self.end - self.start


@dataclass(frozen=True)
class JobRun:
    seconds: float
    busy: float
    own_cpu: float
    postgres_cpu: float
    peak_mib: float
    phases: dict[str, Phase]

    def describe(self) -> str:
        return (
            f"{self.seconds:.1f} s, cores busy {self.busy:.0%}, CPU {self.own_cpu:.1f} + "
            f"{self.postgres_cpu:.1f} core-s (this process + PostgreSQL), peak "
            f"{self.peak_mib:,.0f} MiB"
        )


def _phase_of(step_key: str) -> str:
    """checks, tables, or the step's own asset (cnpj_completo, changes, cnpj_current)."""
    if step_key.endswith("_checks"):
        return "checks"
    name = step_key.removeprefix("cnpj__")
    return "tables" if name in TABLES else name


def phases(instance: dg.DagsterInstance, run_id: str) -> dict[str, Phase]:
    """Each kind of step's span and summed duration, in seconds from the run's start."""
    starts: dict[str, float] = {}
    spans: dict[str, list[tuple[float, float]]] = {}
    logs = instance.all_logs(run_id)
    origin = logs[0].timestamp
    for entry in logs:
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp - origin
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            begin = starts[entry.step_key]
            spans.setdefault(_phase_of(entry.step_key), []).append(
                (begin, entry.timestamp - origin)
            )
    return {
        name: Phase(
            min(s for s, _ in found), max(e for _, e in found), sum(e - s for s, e in found)
        )
        for name, found in spans.items()
    }


def drop_release(server: ServerUrl, release: str = RELEASE) -> None:
    """Drop every table of the release, so the next job is a first load (untimed)."""
    for spec in [*TABLES.values(), CNAES_SECUNDARIAS, COMPLETO, CHANGES]:
        drop_release_tables(server, spec, release)


def run_job(
    job: dg.ReconstructableJob,
    instance: dg.DagsterInstance,
    server: ServerUrl,
    landing: Path,
    first_load: bool = True,
) -> JobRun:
    if first_load:
        drop_release(server)
    checkpoint(server)
    run_config = release_run_config(landing)
    run_config["loggers"]["console"]["config"]["log_level"] = "WARNING"
    cores = BusyCores()
    reset_peak_rss()
    own_before, postgres_before = process_cpu_seconds(), postgres_cpu_seconds()
    cores.start()
    started = time.perf_counter()
    result = dg.execute_job(
        job, instance=instance, tags={"dagster/partition": RELEASE}, run_config=run_config
    )
    seconds = time.perf_counter() - started
    busy = cores.stop()
    if not result.success:
        raise RuntimeError(f"run {result.run_id} failed; see it in `cnpj-assets ui`")
    return JobRun(
        seconds,
        busy,
        process_cpu_seconds() - own_before,
        postgres_cpu_seconds() - postgres_before,
        peak_rss_mib(),
        phases(instance, result.run_id),
    )


def release_rows(server: ServerUrl) -> int:
    """Rows the last whole job loaded, from the audit."""
    with psycopg.connect(server.url) as connection:
        row = connection.execute(
            "SELECT sum(rows) FROM (SELECT DISTINCT ON (table_name) rows "
            "FROM cnpj_audit.table_load WHERE release = %s AND status = 'COMPLETED' "
            "AND table_name = ANY(%s) ORDER BY table_name, id DESC) AS t",
            (RELEASE, list(TABLES)),
        ).fetchone()
    return int(row[0]) if row and row[0] else 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="companies, as fake-release")
    parser.add_argument("--rounds", type=int, default=1, help="tables-only + whole job pairs")
    parser.add_argument("--landing", help="reuse a landing folder holding RELEASE/*.zip")
    args = parser.parse_args()
    server = server_url()
    instance = get_instance(server)
    instance.add_dynamic_partitions(RELEASES.name, [RELEASE])
    print(f"PostgreSQL: {server.redacted()}")
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(args.landing) if args.landing else Path(tmp)
        if not (landing / RELEASE).is_dir():
            print(f"writing a synthetic release of {args.rows:,} companies to {landing}")
            write_release(RELEASE, args.rows, landing, seed=1)
        ratios, wholes = [], []
        for number in range(1, args.rounds + 1):
            alone = run_job(dg.reconstructable(tables_only_job), instance, server, landing)
            whole = run_job(dg.reconstructable(release_job), instance, server, landing)
            after = run_job(
                dg.reconstructable(release_after_publication_job),
                instance,
                server,
                landing,
                first_load=False,
            )
            ratios.append(whole.seconds / alone.seconds)
            wholes.append(whole)
            print(f"round {number}: tables only {alone.describe()}")
            print(f"round {number}: whole job   {whole.describe()}")
            print(f"round {number}: after publication (cnaes_secundarias) {after.describe()}")
            last_table = whole.phases["tables"].end
            print(
                f"round {number}: whole job phases: "
                + ", ".join(
                    f"{name} {p.start:.1f}-{p.end:.1f} s (steps {p.step_seconds:.1f} s)"
                    for name, p in whole.phases.items()
                )
                + f"; after the last table {whole.seconds - last_table:.1f} s"
            )
        rows = release_rows(server)
        drop_release(server)
    real = REAL_RELEASE_ROWS
    projected = statistics.median(w.seconds for w in wholes) / rows * real
    print(
        f"projection of the whole job to a full release ({real / 1e6:.0f} M rows, measured on "
        f"{rows / 1e6:.2f} M): {projected / 60:.1f} min (whole-job seconds per row x real rows)"
    )
    busy = statistics.median(w.busy for w in wholes)
    peak = statistics.median(w.peak_mib for w in wholes)
    print(
        f"whole job, medians over {args.rounds} round(s): cores busy {busy:.0%}, "
        f"peak memory {peak:,.0f} MiB"
    )
    print(f"whole/tables ratio {statistics.median(ratios):.2f}")


if __name__ == "__main__":
    main()
