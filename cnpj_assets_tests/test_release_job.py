"""The `load_release` job as `cnpj-assets load` runs it: side by side, within the pool.

The CLI runs the declared job on the project's instance (PostgreSQL storage, the
`cnpj_postgres` pool), and its executor runs independent steps in threads at once.
These tests read the run's own event log: which steps overlapped, how many table
loads held the pool at once, and what mode the checks ran in.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest

from cnpj_assets.commands import execute_release_job, load_release
from cnpj_assets.defs.assets import LOAD_POOL, RELEASES
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.specs import TABLES
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import database_of_its_own
from cnpj_assets_tests.test_checks import drop_release

RELEASE = "2026-05"
BROKEN = "2026-04"
POOL_LIMIT = 2


@pytest.fixture(scope="module")
def server(postgres_server: ServerUrl) -> Iterator[ServerUrl]:
    """A database of its own: the job publishes, which would move other modules' checks."""
    with database_of_its_own(
        postgres_server, "cnpj_release_job", CNPJ_LOAD_POOL_LIMIT=str(POOL_LIMIT)
    ) as own:
        yield own


@pytest.fixture(scope="module")
def instance(server: ServerUrl) -> dg.DagsterInstance:
    """The instance `cnpj-assets load` uses, with the pool's default limit of 2."""
    return dg.DagsterInstance.get()


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    landing = tmp_path_factory.mktemp("release_job_landing")
    write_release(release=RELEASE, rows=4000, out_dir=landing, seed=31)
    write_release(release=BROKEN, rows=500, out_dir=landing, seed=32)
    (landing / BROKEN / "Naturezas.zip").write_bytes(b"not a zip")
    return landing


@pytest.fixture(scope="module")
def loaded(
    instance: dg.DagsterInstance, landing: Path, server: ServerUrl
) -> Iterator[dg.DagsterRun]:
    assert load_release(RELEASE, landing) == 0
    (run,) = instance.get_runs(
        dg.RunsFilter(job_name="load_release", tags={"dagster/partition": RELEASE})
    )
    yield run
    drop_release(server, RELEASE)


def step_spans(instance: dg.DagsterInstance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step's start and end, from the run's event log."""
    starts: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or entry.step_key is None:
            continue
        if event.event_type_value == "STEP_START":
            starts[entry.step_key] = entry.timestamp
        elif event.event_type_value in ("STEP_SUCCESS", "STEP_FAILURE"):
            spans[entry.step_key] = (starts[entry.step_key], entry.timestamp)
    return spans


def most_at_once(spans: list[tuple[float, float]]) -> int:
    """The largest number of the spans that were running at the same instant."""
    edges = sorted([(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans])
    running = most = 0
    for _, change in edges:
        running += change
        most = max(most, running)
    return most


def test_the_cli_runs_the_declared_job(loaded: dg.DagsterRun) -> None:
    assert loaded.job_name == "load_release"
    assert loaded.status == dg.DagsterRunStatus.SUCCESS


def test_independent_steps_run_side_by_side_and_the_pool_bounds_the_loads(
    loaded: dg.DagsterRun, instance: dg.DagsterInstance
) -> None:
    spans = step_spans(instance, loaded.run_id)
    facts = [spans[f"cnpj__{t}"] for t, spec in TABLES.items() if not spec.is_lookup]
    assert most_at_once(list(spans.values())) >= 2
    assert most_at_once(facts) == POOL_LIMIT
    assert instance.event_log_storage.get_concurrency_info(LOAD_POOL).claimed_slots == []


def test_the_jobs_checks_read_the_loads_counts(
    loaded: dg.DagsterRun, instance: dg.DagsterInstance
) -> None:
    evaluations = [
        entry.dagster_event.event_specific_data
        for entry in instance.all_logs(loaded.run_id)
        if entry.dagster_event
        and entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
        and entry.dagster_event.event_specific_data.asset_key.path[-1] in TABLES
    ]
    modes = {e.metadata["mode"].value for e in evaluations}
    assert len(evaluations) > 20
    assert modes <= {"in-load counts", "one anti-join", "in-load counts + one anti-join"}


def test_a_failed_step_fails_the_run_and_skips_only_what_needs_it(
    instance: dg.DagsterInstance, landing: Path, server: ServerUrl
) -> None:
    instance.add_dynamic_partitions(RELEASES.name, [BROKEN])
    try:
        result = execute_release_job(instance, BROKEN, landing)
    finally:
        drop_release(server, BROKEN)
    assert not result.success
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    failed = {e.step_key for e in result.all_events if e.event_type_value == "STEP_FAILURE"}
    succeeded = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert started & failed == {"cnpj__naturezas"}
    assert not {"cnpj__empresas", "naturezas_checks", "cnpj__cnpj_completo"} & started
    assert {"cnpj__estabelecimentos", "cnpj__socios", "cnpj__simples", "cnpj__cnaes"} <= succeeded
    assert instance.event_log_storage.get_concurrency_info(LOAD_POOL).claimed_slots == []
