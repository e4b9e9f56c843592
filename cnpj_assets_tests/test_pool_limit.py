"""CNPJ_LOAD_POOL_LIMIT changed after the pool exists reaches the pool, and steps still claim.

dagster.yaml's default limit is read when a pool is first used. Changed later, Dagster
1.13.27 tried to insert the pool's row again at every claim, and every step failed on
concurrency_limits_concurrency_key_key; the instance now sets the limit at start-up.
"""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.execution.plan.instance_concurrency_context import InstanceConcurrencyContext
from dagster._core.utils import make_new_run_id

from cnpj_assets.defs.assets import LOAD_POOL
from cnpj_assets.instance import POOL_LIMIT_VARIABLE, get_instance
from cnpj_assets.postgres.server import ServerUrl


def limit_of(instance: dg.DagsterInstance) -> tuple[int, bool]:
    (pool,) = [p for p in instance.event_log_storage.get_pool_limits() if p.name == LOAD_POOL]
    return pool.limit, pool.from_default


def claims(instance: dg.DagsterInstance, run: dg.DagsterRun, step: str) -> bool:
    with InstanceConcurrencyContext(instance, run) as concurrency:
        return concurrency.claim(LOAD_POOL, step)


def test_a_changed_limit_reaches_the_pool_and_steps_still_claim(
    postgres_server: ServerUrl, tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("DAGSTER_HOME", "DAGSTER_PG_URL"):
        monkeypatch.setenv(key, "")
    monkeypatch.setenv("CNPJ_HOME", str(tmp_path))
    monkeypatch.delenv(POOL_LIMIT_VARIABLE, raising=False)
    instance = get_instance(postgres_server)
    instance.event_log_storage.delete_concurrency_limit(LOAD_POOL)  # as on a new instance
    run = instance.add_run(dg.DagsterRun(job_name="load_release", run_id=make_new_run_id()))
    try:
        assert claims(instance, run, "cnpj__empresas")
        assert limit_of(instance) == (2, True)
        monkeypatch.setenv(POOL_LIMIT_VARIABLE, "3")
        instance = get_instance(postgres_server)
        assert claims(instance, run, "cnpj__socios")
        assert limit_of(instance)[0] == 3
    finally:
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        instance.delete_run(run.run_id)
        instance.event_log_storage.delete_concurrency_limit(LOAD_POOL)
