"""Changes benchmark: what `cnpj/changes` costs next to the load of the release it compares.

Usage: CNPJ_HOME=/tmp/bench_changes python benchmarks/bench_changes.py --rows 1000000
(a home of its own: retention keeps the newest releases of the database, and one
loaded there before could push the first release out)

Writes a synthetic release of `--rows` companies and the next month evolved from it at
the real monthly rates (`fake-release --previous`), loads both with the `load_release`
job as `cnpj-assets load` does, then builds the second release's changes again alone.
It prints the changes found per kind, the changes step's seconds inside the job and
alone, the second release's tables (the span of its table steps in the job), and last
the ratio changes alone / tables (lower is better). How long the job ran after its last
table is what the changes, beside the checks and the publication, add to a user's wait.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import dagster as dg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_release import phases  # noqa: E402
from common import drop_release_tables  # noqa: E402

from cnpj_assets.commands import release_run_config  # noqa: E402
from cnpj_assets.definitions import release_job  # noqa: E402
from cnpj_assets.defs.assets import RELEASES  # noqa: E402
from cnpj_assets.defs.changes import changes  # noqa: E402
from cnpj_assets.defs.resources import build_resources  # noqa: E402
from cnpj_assets.instance import get_instance  # noqa: E402
from cnpj_assets.postgres.server import server_url  # noqa: E402
from cnpj_assets.read.completo_view import COMPLETO  # noqa: E402
from cnpj_assets.releases.changes import CHANGES  # noqa: E402
from cnpj_assets.specs import TABLES  # noqa: E402
from cnpj_assets.synthetic import write_release  # noqa: E402
from cnpj_assets.synthetic.evolve import evolve_release  # noqa: E402

FIRST, SECOND = "2027-01", "2027-02"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="companies, as fake-release")
    args = parser.parse_args()
    server = server_url()
    instance = get_instance(server)
    instance.add_dynamic_partitions(RELEASES.name, [FIRST, SECOND])
    print(f"PostgreSQL: {server.redacted()}")
    with tempfile.TemporaryDirectory() as tmp:
        landing = Path(tmp)
        print(f"writing {FIRST} ({args.rows:,} companies) and evolving {SECOND} from it")
        write_release(FIRST, args.rows, landing, seed=3)
        found = Counter(
            (c.table, c.kind) for c in evolve_release(landing / FIRST, SECOND, landing, 4)
        )
        print("changes made: " + ", ".join(f"{t}.{k} {n}" for (t, k), n in sorted(found.items())))
        config = release_run_config(landing)
        config["loggers"]["console"]["config"]["log_level"] = "WARNING"
        for release in (FIRST, SECOND):
            result = dg.execute_job(
                dg.reconstructable(release_job),
                instance=instance,
                tags={"dagster/partition": release},
                run_config=config,
            )
            if not result.success:
                raise RuntimeError(f"the load of {release} failed: run {result.run_id}")
        steps = phases(instance, result.run_id)
        started = time.perf_counter()
        rebuilt = dg.materialize(
            [changes],
            instance=instance,
            partition_key=SECOND,
            resources=build_resources(str(landing)),
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
        alone = time.perf_counter() - started
        (materialization,) = rebuilt.asset_materializations_for_node(changes.op.name)
        if not materialization.metadata["dagster/row_count"].value:
            raise RuntimeError(
                f"the rebuild of {SECOND}'s changes found no release to compare with: another "
                f"release of this CNPJ_HOME outlived {FIRST} (retention keeps the newest); run "
                "it with a CNPJ_HOME of its own"
            )
        for release in (FIRST, SECOND):
            for spec in [*TABLES.values(), COMPLETO, CHANGES]:
                drop_release_tables(server, spec, release)
    tables, in_job = steps["tables"].span, steps["changes"].step_seconds
    after = max(phase.end for phase in steps.values()) - steps["tables"].end
    print(
        f"{SECOND}: tables {tables:.1f} s in its job; changes {in_job:.1f} s in the job "
        f"(beside the checks), {alone:.1f} s alone; the job ended {after:.1f} s after its "
        "last table"
    )
    print(f"ratio changes/tables {alone / tables:.2f}")


if __name__ == "__main__":
    main()
