"""The Receita Federal source against a fake share on 127.0.0.1: listing, download, resume,
refusal of bad zips, skipping complete files, the old HTML index, and the asset."""

from __future__ import annotations

import re
import time
import zipfile
from collections.abc import Iterator
from dataclasses import fields, replace
from io import BytesIO
from pathlib import Path

import dagster as dg
import pytest

from cnpj_assets.defs.assets import RELEASES, TABLE_ASSETS
from cnpj_assets.defs.resources import build_resources
from cnpj_assets.postgres.server import ServerUrl
from cnpj_assets.source import ReceitaSourceResource, release_files
from cnpj_assets.source.assets import select_release_files
from cnpj_assets.source.client import ShareClient, SourceError
from cnpj_assets.source.download import (
    DownloadError,
    DownloadSettings,
    FileOutcome,
    download_release,
)
from cnpj_assets.source.listing import RemoteFile, parse_multistatus
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import count_rows
from cnpj_assets_tests.webdav_server import SHARE_TOKEN, FakeShare, Pace

RELEASE = "2031-01"
OLDER = "2030-12"
FAST = DownloadSettings(
    max_streams=4, max_attempts=3, backoff_seconds=0.01, max_backoff_seconds=0.05
)
STALL_TIMEOUT = 1.0
STALLING = replace(FAST, stall_timeout_seconds=STALL_TIMEOUT)
FOREVER = 10**9  # stalls of a file that never sends its end


@pytest.fixture(scope="module")
def origin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """What the share serves: two small synthetic releases."""
    folder = tmp_path_factory.mktemp("share")
    write_release(release=RELEASE, rows=600, out_dir=folder, seed=11)
    write_release(release=OLDER, rows=200, out_dir=folder, seed=12)
    return folder


@pytest.fixture
def share(origin: Path) -> Iterator[FakeShare]:
    served = FakeShare.from_landing(origin, [OLDER, RELEASE]).start()
    yield served
    served.stop()


def client_for(share: FakeShare, token: str = SHARE_TOKEN, legacy: bool = True) -> ShareClient:
    return ShareClient(share.share_url, token, share.legacy_url if legacy else None, timeout=10)


def download(
    share: FakeShare,
    folder: Path,
    names: list[str] | None = None,
    settings: DownloadSettings = FAST,
) -> tuple[list[FileOutcome], list[str]]:
    client = client_for(share)
    files = [f for f in client.list_files(RELEASE) if names is None or f.name in names]
    messages: list[str] = []
    outcomes = download_release(client, files, folder, settings, messages.append)
    return outcomes, messages


def assert_resumed_from_what_each_stall_delivered(share: FakeShare, name: str) -> None:
    """The first GET asks the whole file; each one after a stall asks from where it broke."""
    expected = [None] + [f"bytes={s.start + s.sent}-" for s in share.stalls_of(name)]
    assert [h.range for h in share.gets(name)] == expected


def test_lists_months_and_files_over_webdav(share: FakeShare, origin: Path) -> None:
    client = client_for(share)
    assert client.list_releases() == [OLDER, RELEASE]
    files = client.list_files(RELEASE)
    assert len(files) == 37
    sizes = {f.name: f.size for f in files}
    assert sizes == {p.name: p.stat().st_size for p in (origin / RELEASE).glob("*.zip")}
    assert all(f.url.startswith(share.share_url + RELEASE + "/") for f in files)
    assert {h.method for h in share.hits} == {"PROPFIND"}


def test_a_wrong_token_fails_with_the_status_and_names_the_token(share: FakeShare) -> None:
    with pytest.raises(SourceError, match="HTTP 401.*refused its token: set share_token") as error:
        client_for(share, token="not-the-token", legacy=False).list_releases()
    assert "not-the-token" not in str(error.value)


def test_parses_a_nextcloud_multistatus_with_encoded_names() -> None:
    xml = """<?xml version="1.0"?><d:multistatus xmlns:d="DAV:">
      <d:response><d:href>/public.php/webdav/2031-01/</d:href><d:propstat><d:prop>
        <d:resourcetype><d:collection/></d:resourcetype></d:prop>
        <d:status>HTTP/1.1 200 OK</d:status></d:propstat></d:response>
      <d:response><d:href>/public.php/webdav/2031-01/Empresas%200.zip</d:href>
        <d:propstat><d:prop><d:getcontentlength>341</d:getcontentlength>
        <d:getlastmodified>Sun, 12 Oct 2031 03:14:00 GMT</d:getlastmodified>
        <d:resourcetype/></d:prop><d:status>HTTP/1.1 200 OK</d:status></d:propstat>
        <d:propstat><d:prop><d:quota-used-bytes/></d:prop>
        <d:status>HTTP/1.1 404 Not Found</d:status></d:propstat></d:response>
    </d:multistatus>"""
    (entry,) = parse_multistatus(xml, "https://share.example/public.php/webdav/2031-01/")
    assert (entry.name, entry.size, entry.is_folder) == ("Empresas 0.zip", 341, False)
    assert entry.url == "https://share.example/public.php/webdav/2031-01/Empresas%200.zip"


def test_downloads_a_release_whole_and_checked(
    share: FakeShare, origin: Path, tmp_path: Path
) -> None:
    outcomes, messages = download(share, tmp_path)
    assert len(outcomes) == 37 and not any(o.skipped for o in outcomes)
    for path in (origin / RELEASE).glob("*.zip"):
        assert (tmp_path / path.name).read_bytes() == path.read_bytes()
    assert not list(tmp_path.glob(".*.part"))
    assert any("37 of 37 files in place" in m for m in messages)


def test_resumes_with_range_after_the_connection_drops(
    share: FakeShare, origin: Path, tmp_path: Path
) -> None:
    share.drop_once = {"Empresas0.zip"}
    (outcome,), messages = download(share, tmp_path, ["Empresas0.zip"])
    gets = share.gets("Empresas0.zip")
    assert len(gets) == 2 and gets[0].range is None
    resumed_at = int(gets[1].range.removeprefix("bytes=").rstrip("-"))
    assert 0 < resumed_at < outcome.size
    assert outcome.attempts == 2 and outcome.fetched_bytes == outcome.size
    assert (tmp_path / "Empresas0.zip").read_bytes() == (
        origin / RELEASE / "Empresas0.zip"
    ).read_bytes()
    assert any(f"resuming at byte {resumed_at:,}" in m for m in messages)


def test_a_stall_is_noticed_in_seconds_and_resumed_from_the_bytes_written(
    share: FakeShare, origin: Path, tmp_path: Path
) -> None:
    share.stalls = {"Empresas0.zip": 3}
    started = time.monotonic()
    (outcome,), messages = download(share, tmp_path, ["Empresas0.zip"], STALLING)
    seconds = time.monotonic() - started
    assert len(share.stalls_of("Empresas0.zip")) == 3
    assert all(s.sent > 0 for s in share.stalls_of("Empresas0.zip"))
    assert_resumed_from_what_each_stall_delivered(share, "Empresas0.zip")
    assert (outcome.stalls, outcome.resumes, outcome.attempts) == (3, 3, 4)
    assert outcome.fetched_bytes == outcome.size  # no byte fetched twice
    assert (tmp_path / "Empresas0.zip").read_bytes() == (
        origin / RELEASE / "Empresas0.zip"
    ).read_bytes()
    assert any("no byte for 1 s, stall 3 of at most 100" in m for m in messages)
    # each stall costs about one stall timeout, not the share's 60 s of silence
    assert seconds < 3 * (STALL_TIMEOUT + 4)


def test_every_file_stalling_twice_arrives_whole_resumed_with_range_and_in_parallel(
    share: FakeShare, origin: Path, tmp_path: Path
) -> None:
    share.stalls = {name: 2 for name in share.releases[RELEASE]}
    started = time.monotonic()
    outcomes, messages = download(share, tmp_path, settings=replace(STALLING, max_streams=16))
    seconds = time.monotonic() - started
    assert len(outcomes) == 37 and len(share.stalled) == 74
    for outcome in outcomes:
        name = outcome.name
        assert (tmp_path / name).read_bytes() == (origin / RELEASE / name).read_bytes()
        assert_resumed_from_what_each_stall_delivered(share, name)
        assert (outcome.stalls, outcome.resumes, outcome.fetched_bytes) == (2, 2, outcome.size)
    assert not list(tmp_path.glob(".*.part"))
    # the stalls fewer streams at once, and files that complete more again
    assert "parallel streams 16 -> 15: a stream stalled" in messages
    assert any(
        re.fullmatch(r"parallel streams 1[56] -> 1[67]: transfers flow", m) for m in messages
    )
    assert re.search(
        r"CRC ok; 37 of 37 files in place, [\d.]+ of [\d.]+ MB; received [\d.]+ MB at "
        r"[\d.]+ MB/s, 74 stalls, 74 resumes; 0 streaming, limit \d+ \(1-16\)$",
        messages[-1],
    )
    # 74 stalls one after another would take 74 stall timeouts; parallel, they overlap
    assert seconds < 15 * STALL_TIMEOUT


def test_a_slow_but_live_server_is_not_a_stall(
    share: FakeShare, origin: Path, tmp_path: Path
) -> None:
    share.pace = Pace(piece_bytes=2_000, seconds=STALL_TIMEOUT / 3)
    size = (origin / RELEASE / "Cnaes.zip").stat().st_size
    assert size > 4 * 2_000  # the whole file takes longer than one stall timeout
    (outcome,), _ = download(share, tmp_path, ["Cnaes.zip"], STALLING)
    assert (outcome.stalls, outcome.attempts, len(share.gets("Cnaes.zip"))) == (0, 1, 1)
    assert outcome.seconds > STALL_TIMEOUT
    assert STALL_TIMEOUT / 4 < outcome.longest_wait_seconds < STALL_TIMEOUT
    assert (tmp_path / "Cnaes.zip").read_bytes() == (origin / RELEASE / "Cnaes.zip").read_bytes()


@pytest.mark.parametrize(
    ("settings", "reason"),
    [
        (replace(STALLING, file_deadline_seconds=3), "its deadline of 3 s passed"),
        (replace(STALLING, max_stalls_per_file=2), "it stalled 3 times, more than the 2 allowed"),
    ],
    ids=["deadline", "max_stalls"],
)
def test_a_file_that_stalls_forever_fails_naming_it_and_the_next_run_resumes_it(
    share: FakeShare, origin: Path, tmp_path: Path, settings: DownloadSettings, reason: str
) -> None:
    share.stalls = {"Cnaes.zip": FOREVER}
    started = time.monotonic()
    with pytest.raises(DownloadError, match="1 of 37 files failed: Cnaes.zip: given up") as error:
        download(share, tmp_path, settings=settings)
    seconds = time.monotonic() - started
    message = str(error.value)
    assert reason in message
    stalls, received, size = re.search(
        r"(\d+) stall\(s\) of 1 s without a byte in [\d.]+ s, ([\d,]+) of ([\d,]+) bytes received",
        message,
    ).groups()
    part = tmp_path / ".Cnaes.zip.part"
    assert int(received.replace(",", "")) == part.stat().st_size > 0
    assert int(size.replace(",", "")) == (origin / RELEASE / "Cnaes.zip").stat().st_size
    # the silence the deadline cut short is no stall: it lasted less than the stall timeout
    assert len(share.stalls_of("Cnaes.zip")) - 1 <= int(stalls) <= len(share.stalls_of("Cnaes.zip"))
    assert sorted(p.name for p in tmp_path.glob("*.zip")) == sorted(
        p.name for p in (origin / RELEASE).glob("*.zip") if p.name != "Cnaes.zip"
    )
    if reason.startswith("its deadline"):
        assert 3 <= seconds < 3 + STALL_TIMEOUT + 4
    share.stalls, share.hits = {}, []
    outcomes, _ = download(share, tmp_path, settings=settings)
    assert [o.name for o in outcomes if not o.skipped] == ["Cnaes.zip"]
    assert [h.range for h in share.gets("Cnaes.zip")] == [
        f"bytes={int(received.replace(',', ''))}-"
    ]
    assert (tmp_path / "Cnaes.zip").read_bytes() == (origin / RELEASE / "Cnaes.zip").read_bytes()


@pytest.mark.parametrize(
    ("fault", "name"), [("truncated", "Socios1.zip"), ("corrupt", "Empresas0.zip")]
)
def test_refuses_a_bad_zip_naming_it(
    share: FakeShare, tmp_path: Path, fault: str, name: str
) -> None:
    setattr(share, fault, {name})
    with pytest.raises(DownloadError, match=rf"1 of 37 files failed: {name}: refused") as error:
        download(share, tmp_path)
    assert "zip" in str(error.value)
    assert not (tmp_path / name).exists() and not list(tmp_path.glob(".*.part"))
    assert len(list(tmp_path.glob("*.zip"))) == 36
    assert len(share.gets(name)) == 2


def test_refuses_a_readable_zip_of_another_size_than_the_listing_says(
    share: FakeShare, tmp_path: Path
) -> None:
    client = client_for(share)
    files = [
        replace(f, size=f.size + 1) if f.name == "Cnaes.zip" else f
        for f in client.list_files(RELEASE)
        if f.name in ("Cnaes.zip", "Motivos.zip")
    ]
    with pytest.raises(DownloadError, match="Cnaes.zip: refused.*the listing says") as error:
        download_release(client, files, tmp_path, FAST, lambda _: None)
    assert "1 of 2 files failed" in str(error.value)
    assert not (tmp_path / "Cnaes.zip").exists() and (tmp_path / "Motivos.zip").exists()


def test_a_zip_in_place_of_another_size_than_the_listing_is_fetched_again(
    share: FakeShare, origin: Path, tmp_path: Path
) -> None:
    """Cut after its download (its ETag file kept): the size alone says it is not the file."""
    download(share, tmp_path, ["Cnaes.zip"])
    in_place = tmp_path / "Cnaes.zip"
    in_place.write_bytes(in_place.read_bytes()[:-10])
    (outcome,), _ = download(share, tmp_path, ["Cnaes.zip"])
    assert not outcome.skipped
    assert in_place.read_bytes() == (origin / RELEASE / "Cnaes.zip").read_bytes()


def test_skips_files_already_complete(share: FakeShare, tmp_path: Path) -> None:
    download(share, tmp_path)
    share.hits.clear()
    outcomes, _ = download(share, tmp_path)
    assert all(o.skipped for o in outcomes)
    assert not [h for h in share.hits if h.method == "GET"]


def stored_zip(member: bytes) -> bytes:
    """A zip whose size depends only on the member's length (stored, not deflated)."""
    buffer = BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        archive.writestr(
            zipfile.ZipInfo("F.K03200$Z.D31012.CNAECSV", (2031, 1, 12, 0, 0, 0)), member
        )
    return buffer.getvalue()


def test_a_zip_republished_at_the_same_size_is_fetched_again(
    share: FakeShare, tmp_path: Path
) -> None:
    first, second = stored_zip(b'"0111301";"Arroz"\n'), stored_zip(b'"0111301";"Trigo"\n')
    assert len(first) == len(second)
    share.releases[RELEASE]["Cnaes.zip"] = first
    download(share, tmp_path, ["Cnaes.zip"])
    share.releases[RELEASE]["Cnaes.zip"] = second
    share.modified["Cnaes.zip"] = time.time()
    (outcome,), _ = download(share, tmp_path, ["Cnaes.zip"])
    assert not outcome.skipped
    assert (tmp_path / "Cnaes.zip").read_bytes() == second
    (again,), _ = download(share, tmp_path, ["Cnaes.zip"])
    assert again.skipped


def test_a_zip_copied_in_by_hand_is_fetched_again_only_if_the_share_has_a_newer_one(
    share: FakeShare, origin: Path, tmp_path: Path
) -> None:
    copied = tmp_path / "Cnaes.zip"
    copied.write_bytes((origin / RELEASE / "Cnaes.zip").read_bytes())
    (outcome,), _ = download(share, tmp_path, ["Cnaes.zip"])
    assert outcome.skipped, "copied after the share's modification time: the listed version"
    share.modified["Cnaes.zip"] = copied.stat().st_mtime + 60
    (outcome,), _ = download(share, tmp_path, ["Cnaes.zip"])
    assert not outcome.skipped and outcome.fetched_bytes == copied.stat().st_size


def test_gives_up_after_bounded_retries(tmp_path: Path, refused_port: int) -> None:
    share = f"http://127.0.0.1:{refused_port}/"
    unreachable = RemoteFile("Cnaes.zip", f"{share}Cnaes.zip", 10, None)
    client = ShareClient(share, SHARE_TOKEN, None, timeout=2)
    with pytest.raises(DownloadError, match="Cnaes.zip: gave up after 3 attempts"):
        download_release(client, [unreachable], tmp_path, FAST, lambda _: None)


def test_falls_back_to_the_old_html_index(share: FakeShare, origin: Path, tmp_path: Path) -> None:
    share.webdav = False
    client = client_for(share)
    assert client.list_releases() == [OLDER, RELEASE]
    files = client.list_files(RELEASE)
    assert len(files) == 37 and all(f.size is None for f in files)
    assert all(f.url.startswith(share.legacy_url) for f in files)
    download_release(client, files[:3], tmp_path, FAST, lambda _: None)
    for f in files[:3]:
        assert (tmp_path / f.name).read_bytes() == (origin / RELEASE / f.name).read_bytes()
        assert zipfile.ZipFile(tmp_path / f.name).testzip() is None


def test_an_incomplete_listing_fails_naming_the_missing_zips(share: FakeShare) -> None:
    share.hidden = {"Socios3.zip", "Cnaes.zip"}
    with pytest.raises(dg.Failure, match=r"35 of 37 zips; missing Cnaes.zip, Socios3.zip"):
        select_release_files(RELEASE, client_for(share).list_files(RELEASE))


def test_the_resource_maps_every_download_setting() -> None:
    settings = DownloadSettings(
        min_streams=2,
        max_streams=8,
        stall_timeout_seconds=5,
        max_stalls_per_file=7,
        file_deadline_seconds=600,
        max_attempts=3,
        backoff_seconds=1,
        max_backoff_seconds=9,
    )
    configured = {
        f.name: getattr(settings, f.name)
        for f in fields(settings)
        if getattr(settings, f.name) != getattr(DownloadSettings(), f.name)
    }
    assert len(configured) == 8  # every value differs from its default, so none is lost
    receita = ReceitaSourceResource(
        min_download_streams=configured.pop("min_streams"),
        max_download_streams=configured.pop("max_streams"),
        **configured,
    )
    assert receita.download_settings() == settings


def test_the_asset_downloads_then_the_tables_load(
    share: FakeShare, postgres_server: ServerUrl, tmp_path: Path
) -> None:
    instance = dg.DagsterInstance.ephemeral()
    instance.add_dynamic_partitions(RELEASES.name, [RELEASE])
    receita = ReceitaSourceResource(share_url=share.share_url, legacy_url="", backoff_seconds=0.01)
    result = dg.materialize(
        [release_files, *TABLE_ASSETS],
        instance=instance,
        partition_key=RELEASE,
        resources={**build_resources(str(tmp_path)), "receita": receita},
    )
    assert result.success
    assert (tmp_path / RELEASE / "_SUCCESS").is_file()
    by_key = {
        m.asset_key.path[-1]: m.metadata
        for m in result.asset_materializations_for_node("cnpj__release_files")
    }
    assert by_key["release_files"]["files"].value == 37
    assert by_key["release_files"]["downloaded_files"].value == 37
    assert by_key["release_files"]["stalls"].value == by_key["release_files"]["resumes"].value == 0
    empresas = result.asset_materializations_for_node("cnpj__empresas")[0].metadata
    assert (
        empresas["dagster/row_count"].value == count_rows(postgres_server, "empresas", RELEASE) > 0
    )
