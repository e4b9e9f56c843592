"""What the CLI's `regime` commands do: the declared regime jobs on one snapshot, run in
this process the way `cnpj-assets load` runs a release."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg

from cnpj_assets.commands import (
    DATA_SCHEMAS,
    print_failures,
    print_summary,
    release_run_config,
)
from cnpj_assets.declared_runs import execute_declared_job
from cnpj_assets.definitions import regime_download_job, regime_load_job
from cnpj_assets.defs.regime import SNAPSHOTS
from cnpj_assets.instance import get_instance
from cnpj_assets.postgres.access import check_access
from cnpj_assets.postgres.server import server_url
from cnpj_assets.regime.current import CURRENT_SCHEMA
from cnpj_assets.regime.landing import discover_snapshot
from cnpj_assets.regime.share import list_folder
from cnpj_assets.regime.spec import FOLDER, REGIME_TRIBUTARIO
from cnpj_assets.runs.healing import heal_dead_runs
from cnpj_assets.source.resource import build_source_resource


def load_snapshot(snapshot: str, landing: Path) -> int:
    """Load and check a snapshot already in `<landing>/regime_tributario/<snapshot>/`."""
    files = discover_snapshot(landing, snapshot)
    print(f"{FOLDER} {snapshot}: {len(files)} zips in {files[0].path.parent}")
    return _run(regime_load_job, snapshot, landing)


def download_snapshot(landing: Path) -> int:
    """Download the share's current snapshot of the folder, then load and check it."""
    listing = list_folder(build_source_resource().client())
    print(
        f"{FOLDER} on the share: snapshot {listing.snapshot} (modified {listing.modified}), "
        f"{len(listing.files)} zips: {', '.join(f.name for f in listing.files)}"
    )
    return _run(regime_download_job, listing.snapshot, landing)


def _run(job: Callable[[], dg.JobDefinition], snapshot: str, landing: Path) -> int:
    server = server_url()
    check_access(server.url, DATA_SCHEMAS)
    instance = get_instance(server)
    heal_dead_runs(instance)
    instance.add_dynamic_partitions(SNAPSHOTS.name, [snapshot])
    result = execute_declared_job(
        job, instance, release_run_config(landing), {"dagster/partition": snapshot}
    )
    print_summary(server, result.run_id)
    if not result.success:
        print_failures(result)
        print(f"{FOLDER} {snapshot} FAILED; see the run {result.run_id} in `cnpj-assets ui`")
        return 1
    print(f"\n{CURRENT_SCHEMA}.{REGIME_TRIBUTARIO.name} shows the newest snapshot loaded")
    return 0
