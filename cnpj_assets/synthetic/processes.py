"""Writes a release's zips in worker processes, one core each, the slowest zips first.

Making the records is pure Python: one core writes ~150 k rows/s, so a quarter of a
real release (~52 M rows) would keep it busy for minutes. The zips are independent
(zips.py), so a process per core writes them side by side with the same bytes. The
largest zips start first, so the big file 0 of each table and the single Simples zip
never run alone at the end while the other cores idle.
"""

from __future__ import annotations

import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path

from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic.zips import ReleasePlan, WrittenZip, ZipTask, ZipWriter

Progress = Callable[[str], None]

PARALLEL_MIN_ROWS = 100_000  # below this, starting the processes costs more than they save
MICROSECONDS_PER_COMPANY = {  # one core, measured at 1 M companies: only the order matters
    "estabelecimentos": 7.6,
    "empresas": 4.0,
    "simples": 2.3,
    "socios": 2.0,
}

_writer: ZipWriter | None = None  # the worker process's own writer, made once


class WorkerDied(RuntimeError):
    """A worker process ended without its result; the message lists the usual causes."""


def default_workers(rows: int) -> int:
    """One process per usable core for a release worth it, else the calling process alone."""
    return len(os.sched_getaffinity(0)) if rows >= PARALLEL_MIN_ROWS else 1


def _start_worker(plan: ReleasePlan) -> None:
    global _writer
    _writer = ZipWriter(plan)


def _write_in_worker(folder: Path, task: ZipTask) -> WrittenZip:
    if _writer is None:
        raise RuntimeError("a worker writes zips only after _start_worker made its writer")
    return _writer.write(folder, task)


def _slowest_first(plan: ReleasePlan, tasks: Sequence[ZipTask]) -> list[ZipTask]:
    ranges = plan.companies().file_ranges()

    def cost(task: ZipTask) -> float:
        spec = TABLES[task.table]
        companies = len(ranges[task.number]) if spec.file_count > 1 else plan.rows
        return companies * MICROSECONDS_PER_COMPANY.get(task.table, 0.0)

    return sorted(tasks, key=cost, reverse=True)


def _line(written: WrittenZip, done: int, total: int, started: float) -> str:
    return (
        f"{written.file.zip}: {written.file.records:,} records "
        f"({done} of {total} zips, {time.perf_counter() - started:.0f} s)"
    )


def write_zips(
    plan: ReleasePlan,
    folder: Path,
    tasks: Sequence[ZipTask],
    workers: int,
    progress: Progress | None = None,
) -> list[WrittenZip]:
    """Write the zips of `tasks` into `folder` with `workers` processes; results in task order.

    Workers are spawned, not forked: the caller may hold threads (Dagster, DuckDB,
    psycopg) whose locks a fork would copy mid-use.
    """
    started = time.perf_counter()
    if workers <= 1 or len(tasks) <= 1:
        writer = ZipWriter(plan)
        results = []
        for number, task in enumerate(tasks, 1):
            results.append(writer.write(folder, task))
            if progress:
                progress(_line(results[-1], number, len(tasks), started))
        return results
    written: dict[str, WrittenZip] = {}
    pool = ProcessPoolExecutor(
        max_workers=min(workers, len(tasks)),
        mp_context=multiprocessing.get_context("spawn"),
        initializer=_start_worker,
        initargs=(plan,),
    )
    try:
        futures: dict[Future[WrittenZip], ZipTask] = {
            pool.submit(_write_in_worker, folder, task): task
            for task in _slowest_first(plan, tasks)
        }
        for future in as_completed(futures):
            result = written[futures[future].zip_name] = future.result()
            if progress:
                progress(_line(result, len(written), len(tasks), started))
    except BrokenProcessPool as error:
        raise WorkerDied(
            f"a process writing the zips of {folder} died before it finished: killed, out "
            "of memory, or started by a script that calls write_release outside "
            '`if __name__ == "__main__":` (each spawned worker imports that script again); '
            "workers=1 writes them in this process"
        ) from error
    finally:
        pool.shutdown(cancel_futures=True)
    return [written[task.zip_name] for task in tasks]
