"""The asset `cnpj/release_files`: a release's 37 zips, downloaded into the landing folder.

The ten table assets depend on it, so the graph reads share -> landing -> PostgreSQL. It
writes `_SUCCESS` once every zip is in place and verified: the landing sensor takes that
marker as "complete and stable" without waiting two ticks.
"""

import time
from pathlib import Path

import dagster as dg

from cnpj_assets.defs import plotted
from cnpj_assets.defs.assets import GROUP, RELEASES
from cnpj_assets.defs.job_executor import release_executor
from cnpj_assets.defs.resources import LandingResource
from cnpj_assets.snapshot import SUCCESS_MARKER, expected_zip_names
from cnpj_assets.source.download import FileOutcome, download_release
from cnpj_assets.source.listing import RemoteFile
from cnpj_assets.source.resource import ReceitaSourceResource

SOURCE_GROUP = "receita"
RELEASE_FILES_KEY = dg.AssetKey([GROUP, "release_files"])
MB = 1024 * 1024


def select_release_files(release: str, listed: list[RemoteFile]) -> list[RemoteFile]:
    """The listed zips a release needs; fails naming the missing ones if any is absent."""
    by_name = {f.name.lower(): f for f in listed}
    expected = expected_zip_names()
    missing = [name for name in expected if name.lower() not in by_name]
    if missing:
        raise dg.Failure(
            f"release {release} on the source lists {len(expected) - len(missing)} of "
            f"{len(expected)} zips; missing {', '.join(missing)}",
            allow_retries=False,
        )
    return [by_name[name.lower()] for name in expected]


def _outcomes_markdown(outcomes: list[FileOutcome]) -> str:
    lines = [
        "| zip | MB | fetched MB | skipped | attempts | stalls | resumes | longest wait s "
        "| seconds |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {o.name} | {o.size / MB:,.1f} | {o.fetched_bytes / MB:,.1f} | "
        f"{'yes' if o.skipped else 'no'} | {o.attempts} | {o.stalls} | {o.resumes} | "
        f"{o.longest_wait_seconds:.2f} | {o.seconds:.1f} |"
        for o in outcomes
    ]
    return "\n".join(lines)


def download_metadata(
    outcomes: list[FileOutcome], seconds: float, folder: Path
) -> dict[str, dg.MetadataValue]:
    """What a download did, for the UI: files, bytes, stalls and resumes, speed, each zip."""
    fetched = sum(o.fetched_bytes for o in outcomes)
    return {
        "files": dg.MetadataValue.int(len(outcomes)),
        "downloaded_files": dg.MetadataValue.int(sum(not o.skipped for o in outcomes)),
        "skipped_files": dg.MetadataValue.int(sum(o.skipped for o in outcomes)),
        "bytes": dg.MetadataValue.int(sum(o.size for o in outcomes)),
        "downloaded_bytes": dg.MetadataValue.int(fetched),
        "stalls": dg.MetadataValue.int(sum(o.stalls for o in outcomes)),
        "resumes": dg.MetadataValue.int(sum(o.resumes for o in outcomes)),
        "seconds": plotted.seconds(seconds),
        "megabytes_per_second": plotted.rate(fetched / MB, seconds, digits=2),
        "folder": dg.MetadataValue.path(str(folder)),
        "files_downloaded": dg.MetadataValue.md(_outcomes_markdown(outcomes)),
    }


@dg.asset(
    key=RELEASE_FILES_KEY,
    group_name=SOURCE_GROUP,
    partitions_def=RELEASES,
    kinds={"http"},
    description=(
        "The release's 37 zips from the Receita Federal share (WebDAV; the old HTML index as "
        "fallback), downloaded into the landing folder: parallel (fewer streams while the "
        "share stalls them), resumed with HTTP Range after a drop or a stall, size- and "
        "CRC-checked before they take their real name; `_SUCCESS` marks a complete release."
    ),
)
def release_files(
    context: dg.AssetExecutionContext, receita: ReceitaSourceResource, landing: LandingResource
) -> dg.MaterializeResult:
    release = context.partition_key
    started = time.monotonic()
    files = select_release_files(release, receita.list_files(release))
    folder = Path(landing.landing_dir) / release
    context.log.info(
        f"{release}: {len(files)} zips, {sum(f.size or 0 for f in files) / MB:,.1f} MB "
        f"listed, into {folder} with {receita.min_download_streams} to "
        f"{receita.max_download_streams} parallel streams"
    )
    outcomes = download_release(
        receita.client(), files, folder, receita.download_settings(), context.log.info
    )
    (folder / SUCCESS_MARKER).write_text("\n".join(o.name for o in outcomes) + "\n")
    metadata = download_metadata(outcomes, time.monotonic() - started, folder)
    metadata["source"] = dg.MetadataValue.url(files[0].url.rsplit("/", 1)[0] + "/")
    return dg.MaterializeResult(metadata=metadata)


download_job = dg.define_asset_job(
    "download_release",
    selection=dg.AssetSelection.assets(RELEASE_FILES_KEY),
    description="Download one release from the Receita Federal share into the landing folder.",
    executor_def=dg.in_process_executor,
)

download_and_load_job = dg.define_asset_job(
    "download_and_load_release",
    selection=dg.AssetSelection.assets(RELEASE_FILES_KEY) | dg.AssetSelection.groups(GROUP),
    description="Download one release from the Receita Federal share, then load its ten tables.",
    executor_def=release_executor(),
)
