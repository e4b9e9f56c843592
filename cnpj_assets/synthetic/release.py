"""write_release: the 37 zips of a synthetic CNPJ release and the report that describes them."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Collection
from pathlib import Path

from cnpj_assets.synthetic.lookups import ORPHAN_CODES
from cnpj_assets.synthetic.processes import Progress, default_workers, write_zips
from cnpj_assets.synthetic.quirks import MIN_ROWS
from cnpj_assets.synthetic.report import ReleaseReport
from cnpj_assets.synthetic.zips import ReleasePlan, WrittenZip, member_date, release_zips

EXTRACTION_DAY = 12  # real extractions happen in the first half of the release month


def extraction_date(release: str) -> dt.date:
    """The extraction date of a `YYYY-MM` release, the one its member names carry."""
    match = re.fullmatch(r"(\d{4})-(\d{2})", release)
    if not match or not 1 <= int(match[2]) <= 12:
        raise ValueError(f"a release is named YYYY-MM, not {release!r}")
    return dt.date(int(match[1]), int(match[2]), EXTRACTION_DAY)


def _report(release: str, plan: ReleasePlan, written: list[WrittenZip]) -> ReleaseReport:
    companies = plan.companies()
    orphans = range(companies.rows, companies.rows + companies.orphan_count)
    return ReleaseReport(
        release=release,
        extraction_date=member_date(plan.day),
        seed=plan.seed,
        rows=plan.rows,
        with_quirks=plan.quirks,
        files=tuple(zip_.file for zip_ in written),
        quirks=tuple(entry for zip_ in written for entry in zip_.quirks),
        orphan_cnpj_basicos=tuple(companies.key(index).basico for index in orphans),
        orphan_codes=dict(ORPHAN_CODES),
    )


def write_release(
    release: str,
    rows: int,
    out_dir: Path,
    seed: int = 0,
    quirks: bool = False,
    only: Collection[str] | None = None,
    workers: int | None = None,
    progress: Progress | None = None,
) -> ReleaseReport:
    """Write a synthetic release into `out_dir/<release>/`: 37 zips and quirks.json.

    `rows` is the number of empresas rows; establishments (~1.05x), partners (~0.4x) and
    Simples rows (~0.58x) follow from it, lookups have their real sizes. The bytes depend
    only on the arguments (not on `workers`). With `quirks`, every real-world quirk of
    the layout is planted at a reported line (see quirks.QUIRKS); that needs at least 100
    rows. `only` names the zips to write (benchmarks want one big file, not a release);
    the others are skipped but the data stays the same as in a full release. `workers`
    processes write the zips (default: one per core from 100 k rows on); `progress` is
    told of each zip as it is written.
    """
    if rows < 0:
        raise ValueError("rows must be >= 0")
    if quirks and rows < MIN_ROWS:
        raise ValueError(f"quirks need at least {MIN_ROWS} rows to spread over the files")
    plan = ReleasePlan(rows, seed, extraction_date(release), quirks)
    folder = Path(out_dir) / release
    folder.mkdir(parents=True, exist_ok=True)
    tasks = [task for task in release_zips() if only is None or task.zip_name in only]
    workers = default_workers(rows) if workers is None else workers
    written = write_zips(plan, folder, tasks, workers, progress)
    report = _report(release, plan, written)
    report.save(folder)
    return report
