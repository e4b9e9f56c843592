"""Loads that survive kill -9, concurrency and hostile input, and lose nothing."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import psycopg
import pytest

from cnpj_assets.landing import ReleaseError, discover_release
from cnpj_assets.load import file_copier
from cnpj_assets.load.loader import LoadSettings, RunInfo, TableLoader
from cnpj_assets.postgres import load_lock, tables
from cnpj_assets.postgres.server import ServerUrl, ensure_database
from cnpj_assets.reader import MemberError, ReaderSettings, extract_member, read_member
from cnpj_assets.reader.member import ExtractLimits
from cnpj_assets.specs import TABLES, TableSpec
from cnpj_assets.synthetic import write_release
from cnpj_assets_tests.helpers import count_rows, materialize, query
from cnpj_assets_tests.oracle import read_table

RELEASE = "2025-06"

KILLED_LOAD = """
import sys
from pathlib import Path
from cnpj_assets.landing import discover_release
from cnpj_assets.load.loader import LoadSettings, RunInfo, TableLoader
from cnpj_assets.specs import TABLES, TableSpec
url, landing, scratch = sys.argv[1:4]
settings = LoadSettings(scratch_dir=Path(scratch), batch_rows=2000, subbatch_rows=1000)
loader = TableLoader(url, settings, progress=lambda _: None)
loader.load(TABLES["estabelecimentos"], discover_release(Path(landing), "2025-06"),
            RunInfo(dagster_run_id=sys.argv[4]))
"""


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("robust_landing")
    write_release(RELEASE, 40_000, folder, seed=3)
    return folder


def copy_of_table(landing: Path, table: str, tmp_path: Path) -> Path:
    """The table's zips copied to a landing folder of the test's own, to break at will."""
    folder = tmp_path / "landing" / RELEASE
    folder.mkdir(parents=True)
    for name in TABLES[table].zip_names():
        (folder / name).write_bytes((landing / RELEASE / name).read_bytes())
    return folder


def loader(server: ServerUrl, tmp_path: Path) -> TableLoader:
    return TableLoader(server.url, LoadSettings(scratch_dir=tmp_path / "scratch"), lambda _: None)


def duplicated_establishments(server: ServerUrl) -> int:
    """Full CNPJs that appear more than once in the test release."""
    return query(
        server,
        """SELECT count(*) FROM (SELECT 1 FROM cnpj.estabelecimentos WHERE release = %s
           GROUP BY cnpj_basico, cnpj_ordem, cnpj_dv HAVING count(*) > 1) d""",
        (RELEASE,),
    )[0][0]


def statuses(server: ServerUrl, run_id: str) -> list[str]:
    return [
        row[0]
        for row in query(
            server,
            """SELECT s.status FROM cnpj_audit.subbatch_load s
               JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
               JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
               JOIN cnpj_audit.table_load t ON t.id = f.table_load_id
               WHERE t.dagster_run_id = %s""",
            (run_id,),
        )
    ]


@pytest.mark.parametrize("committed_before_kill", [0, 3], ids=["before-any-copy", "mid-copy"])
def test_kill_9_mid_load_keeps_the_old_release_and_the_next_run_finishes(
    postgres_server: ServerUrl, landing: Path, tmp_path: Path, committed_before_kill: int
) -> None:
    victim_run, rescue_run = f"victim-{committed_before_kill}", f"rescue-{committed_before_kill}"
    started = "SELECT count(*) FROM cnpj_audit.table_load WHERE dagster_run_id = %s"
    spec = TABLES["estabelecimentos"]
    release = discover_release(landing, RELEASE)
    loader(postgres_server, tmp_path).load(spec, release)
    expected = count_rows(postgres_server, "estabelecimentos", RELEASE)
    victim = subprocess.Popen(
        [
            sys.executable,
            "-c",
            KILLED_LOAD,
            postgres_server.url,
            str(landing),
            str(tmp_path / "v"),
            victim_run,
        ]
    )
    try:
        deadline = time.monotonic() + 120
        while (
            query(postgres_server, started, (victim_run,))[0][0] == 0
            or statuses(postgres_server, victim_run).count("COMPLETED") < committed_before_kill
        ):
            assert victim.poll() is None, "the load finished before it could be killed"
            assert time.monotonic() < deadline, "no sub-batch committed in time"
            time.sleep(0.05)
        os.kill(victim.pid, signal.SIGKILL)
    finally:
        victim.wait()
    assert count_rows(postgres_server, "estabelecimentos", RELEASE) == expected
    victim_status = "SELECT status FROM cnpj_audit.table_load WHERE dagster_run_id = %s"
    assert query(postgres_server, victim_status, (victim_run,)) == [("RUNNING",)]
    committed_rows = query(
        postgres_server,
        """SELECT coalesce(sum(s.rows), 0) FROM cnpj_audit.subbatch_load s
           JOIN cnpj_audit.batch_load b ON b.id = s.batch_load_id
           JOIN cnpj_audit.file_load f ON f.id = b.file_load_id
           JOIN cnpj_audit.table_load t ON t.id = f.table_load_id
           WHERE t.dagster_run_id = %s AND s.status = 'COMPLETED'""",
        (victim_run,),
    )[0][0]
    assert committed_rows > 0 or committed_before_kill == 0

    loader(postgres_server, tmp_path).load(spec, release, RunInfo(dagster_run_id=rescue_run))

    assert count_rows(postgres_server, "estabelecimentos", RELEASE) == expected
    assert duplicated_establishments(postgres_server) == 0
    victim_tables = query(
        postgres_server,
        "SELECT status, error FROM cnpj_audit.table_load WHERE dagster_run_id = %s",
        (victim_run,),
    )
    assert victim_tables[0][0] == "ABANDONED" and rescue_run in victim_tables[0][1]
    assert set(statuses(postgres_server, victim_run)) <= {"COMPLETED", "ABANDONED"}
    resumed, copied = query(
        postgres_server,
        """SELECT sum(f.resumed_rows), sum(f.rows - f.resumed_rows)
           FROM cnpj_audit.table_load t JOIN cnpj_audit.file_load f ON f.table_load_id = t.id
           WHERE t.dagster_run_id = %s""",
        (rescue_run,),
    )[0]
    assert resumed == committed_rows, "resumed exactly the committed sub-batches"
    assert resumed + copied == expected
    leftovers = query(
        postgres_server,
        "SELECT count(*) FROM pg_tables WHERE schemaname = 'cnpj' AND tablename LIKE %s",
        (f"estabelecimentos_{RELEASE.replace('-', '_')}_load%",),
    )[0][0]
    assert leftovers == 0


def test_a_connection_cut_mid_copy_is_retried_and_resumed(
    postgres_server: ServerUrl, landing: Path, tmp_path: Path
) -> None:
    spec = TABLES["estabelecimentos"]
    release = discover_release(landing, RELEASE)
    settings = LoadSettings(
        scratch_dir=tmp_path / "scratch",
        batch_rows=2000,
        subbatch_rows=1000,
        retry_backoff_seconds=0.1,
    )
    messages: list[str] = []
    cut: list[int] = []

    def cut_a_copy_connection() -> None:
        deadline = time.monotonic() + 60
        with psycopg.connect(postgres_server.url, autocommit=True) as admin:
            while not cut and time.monotonic() < deadline:
                done = statuses(postgres_server, "cut-run").count("COMPLETED")
                if done >= 3:
                    cut.extend(
                        row[0]
                        for row in admin.execute(
                            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE query LIKE 'COPY %%estabelecimentos%%' AND pid <> pg_backend_pid()"
                        )
                    )
                time.sleep(0.02)

    cutter = threading.Thread(target=cut_a_copy_connection)
    cutter.start()
    try:
        TableLoader(postgres_server.url, settings, messages.append).load(
            spec, release, RunInfo(dagster_run_id="cut-run")
        )
    finally:
        cutter.join()
    assert any(cut), "no COPY connection was cut"
    assert any("connection lost" in m for m in messages)
    loads = query(
        postgres_server,
        "SELECT status, resumed_from IS NOT NULL, rows FROM cnpj_audit.table_load "
        "WHERE dagster_run_id = 'cut-run' ORDER BY id",
    )
    assert loads[0][0] == "FAILED" and loads[-1][:2] == ("COMPLETED", True)
    oracle_rows = sum(
        len(f.good) for f in read_table(landing, RELEASE, "estabelecimentos").values()
    )
    assert loads[-1][2] == count_rows(postgres_server, "estabelecimentos", RELEASE) == oracle_rows
    assert duplicated_establishments(postgres_server) == 0


def test_full_reload_ignores_an_unfinished_load(
    postgres_server: ServerUrl, landing: Path, tmp_path: Path
) -> None:
    broken = copy_of_table(landing, "empresas", tmp_path)
    good = (broken / "Empresas4.zip").read_bytes()
    (broken / "Empresas4.zip").write_bytes(b"garbage")
    with pytest.raises(MemberError, match="Empresas4.zip"):
        loader(postgres_server, tmp_path).load(
            TABLES["empresas"], discover_release(broken.parent, RELEASE)
        )
    (broken / "Empresas4.zip").write_bytes(good)
    settings = LoadSettings(scratch_dir=tmp_path / "scratch", full_reload=True)
    TableLoader(postgres_server.url, settings, lambda _: None).load(
        TABLES["empresas"], discover_release(broken.parent, RELEASE), RunInfo(dagster_run_id="full")
    )
    resumed_from, resumed_rows, rows = query(
        postgres_server,
        """SELECT t.resumed_from, sum(f.resumed_rows), t.rows FROM cnpj_audit.table_load t
           JOIN cnpj_audit.file_load f ON f.table_load_id = t.id
           WHERE t.dagster_run_id = 'full' GROUP BY t.id""",
    )[0]
    assert resumed_from is None and resumed_rows == 0
    assert rows == count_rows(postgres_server, "empresas", RELEASE) > 0


def test_a_second_load_of_the_same_partition_is_refused_naming_the_first(
    postgres_server: ServerUrl, landing: Path, tmp_path: Path
) -> None:
    with psycopg.connect(postgres_server.url, autocommit=True) as holder:
        assert load_lock.try_lock(holder, "cnaes", RELEASE)
        holder.execute(
            "INSERT INTO cnpj_audit.table_load (table_name, release, status, dagster_run_id) "
            "VALUES ('cnaes', %s, 'RUNNING', 'first-run')",
            (RELEASE,),
        )
        with pytest.raises(load_lock.LoadLockedError, match="first-run"):
            loader(postgres_server, tmp_path).load(
                TABLES["cnaes"], discover_release(landing, RELEASE)
            )
    loader(postgres_server, tmp_path).load(TABLES["cnaes"], discover_release(landing, RELEASE))
    assert count_rows(postgres_server, "cnaes", RELEASE) == 1359
    assert query(
        postgres_server,
        "SELECT status FROM cnpj_audit.table_load WHERE dagster_run_id = 'first-run'",
    ) == [("ABANDONED",)]


def test_no_password_in_logs_metadata_or_errors(
    postgres_server: ServerUrl, landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "s3cr3t-Pa55word"
    with psycopg.connect(postgres_server.url, autocommit=True) as connection:
        connection.execute(f"CREATE ROLE loader LOGIN SUPERUSER PASSWORD '{secret}'")
    url = postgres_server.url.replace("postgres:@", f"loader:{secret}@")
    monkeypatch.setenv("CNPJ_DATABASE_URL", url)
    good = materialize(landing, RELEASE, ["paises"])
    broken_landing = tmp_path / "broken"
    (broken_landing / RELEASE).mkdir(parents=True)
    for zip_path in (landing / RELEASE).glob("*.zip"):
        (broken_landing / RELEASE / zip_path.name).write_bytes(zip_path.read_bytes())
    (broken_landing / RELEASE / "Motivos.zip").write_bytes(b"not a zip at all")
    bad = materialize(broken_landing, RELEASE, ["motivos"])
    assert good.success and not bad.success
    for result in (good, bad):
        for event in result.all_events:
            assert secret not in str(event)
    audit_text = query(
        postgres_server, "SELECT string_agg(t::text, ' ') FROM cnpj_audit.table_load t"
    )
    assert secret not in audit_text[0][0]


def test_scratch_files_are_removed_after_a_failed_file(
    postgres_server: ServerUrl, landing: Path, tmp_path: Path
) -> None:
    broken = copy_of_table(landing, "socios", tmp_path)
    data = (broken / "Socios5.zip").read_bytes()
    (broken / "Socios5.zip").write_bytes(data[: len(data) // 2])
    with pytest.raises(MemberError, match="Socios5.zip"):
        loader(postgres_server, tmp_path).load(
            TABLES["socios"], discover_release(broken.parent, RELEASE)
        )
    assert not list((tmp_path / "scratch").rglob("*"))


@pytest.mark.parametrize("name", ["2026-13", "../x", "2026-1", "x2026-10"])
def test_release_names_that_are_not_months_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ReleaseError, match="YYYY-MM"):
        discover_release(tmp_path, name)


def _zip(path: Path, member: str, data: bytes) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(member, data)
    return path


def test_a_zip_bomb_is_refused_before_extraction(tmp_path: Path) -> None:
    bomb = _zip(tmp_path / "Cnaes.zip", "F.K03200$Z.D61012.CNAECSV", b"0" * 50_000_000)
    with pytest.raises(MemberError, match="compression ratio"):
        extract_member(bomb, tmp_path / "scratch", ExtractLimits(max_ratio=100))
    with pytest.raises(MemberError, match="over the limit"):
        extract_member(bomb, tmp_path / "scratch", ExtractLimits(max_expanded_bytes=1_000_000))
    assert not list((tmp_path / "scratch").glob("*.csv"))


def read_codes(tmp_path: Path, data: bytes, settings: ReaderSettings | None = None):
    zip_path = _zip(tmp_path / "Cnaes.zip", "F.K03200$Z.D61012.CNAECSV", data)
    member = extract_member(zip_path, tmp_path / "scratch")
    read = read_member(TABLES["cnaes"], member, settings or ReaderSettings())
    rows = [row for batch in read.batches() for row in batch.data.to_pylist()]
    return rows, read.result


def test_bytes_invalid_in_the_chosen_encoding_are_quarantined(tmp_path: Path) -> None:
    data = '"1";"ok"\n"2";"ção"\n"3";"fine"\n'.encode("latin-1")
    rows, result = read_codes(tmp_path, data, ReaderSettings(encoding="utf-8"))
    assert [r["codigo"] for r in rows] == ["1", "3"]
    assert [(r.line, "INVALID ENCODING" in r.reason) for r in result.rejects] == [(2, True)]


def test_a_10_mb_line_is_quarantined_not_fatal(tmp_path: Path) -> None:
    huge = '"2";"' + os.urandom(5_000_000).hex() + '"'  # random: no zip-bomb ratio
    data = ('"1";"before"\n' + huge + '\n"3";"after"\n').encode("latin-1")
    rows, result = read_codes(tmp_path, data)
    assert [r["codigo"] for r in rows] == ["1", "3"]
    assert [r.line for r in result.rejects] == [2]
    assert "LINE SIZE" in result.rejects[0].reason


def test_control_characters_and_sql_looking_text_load_verbatim(
    postgres_server: ServerUrl, tmp_path: Path
) -> None:
    values = [
        "Robert'); DROP TABLE cnpj.cnaes;--",
        "tab\there\x01\x1f bell\x07",
        "$$; SELECT 1; $$",
    ]
    data = "".join(f'"{i}";"{v}"\n' for i, v in enumerate(values)).encode("latin-1")
    folder = tmp_path / "landing" / "2025-07"
    folder.mkdir(parents=True)
    _zip(folder / "Cnaes.zip", "F.K03200$Z.D61012.CNAECSV", data)
    loader(postgres_server, tmp_path).load(
        TABLES["cnaes"], discover_release(folder.parent, "2025-07")
    )
    loaded = query(
        postgres_server,
        "SELECT descricao FROM cnpj.cnaes WHERE release = '2025-07' ORDER BY codigo",
    )
    assert [row[0] for row in loaded] == values


def test_sql_looking_file_names_are_refused_as_unknown(tmp_path: Path) -> None:
    folder = tmp_path / "2025-08"
    folder.mkdir()
    _zip(folder / "x'; DROP TABLE t;--.zip", "whatever.txt", b"1")
    with pytest.raises(ReleaseError, match="unknown file"):
        discover_release(tmp_path, "2025-08")


def test_short_disk_is_a_clear_error_before_extraction(tmp_path: Path) -> None:
    zip_path = _zip(tmp_path / "Cnaes.zip", "F.K03200$Z.D61012.CNAECSV", b'"1";"a"\n')
    with pytest.raises(MemberError, match="not enough disk"):
        extract_member(zip_path, tmp_path / "scratch", ExtractLimits(min_free_bytes=2**62))
    assert not list((tmp_path / "scratch").glob("*.csv"))


def test_different_tables_and_releases_load_side_by_side(
    postgres_server: ServerUrl, landing: Path, tmp_path: Path
) -> None:
    other = tmp_path / "other"
    write_release("2025-05", 300, other, seed=9, only=TABLES["paises"].zip_names())
    jobs = [
        (TABLES["cnaes"], discover_release(landing, RELEASE)),
        (TABLES["paises"], discover_release(landing, RELEASE)),
        (TABLES["paises"], discover_release(other, "2025-05")),
    ]
    errors: list[BaseException] = []

    def load(spec, release) -> None:
        try:
            TableLoader(
                postgres_server.url,
                LoadSettings(scratch_dir=tmp_path / spec.name / release.name),
                lambda _: None,
            ).load(spec, release)
        except BaseException as error:  # collected and asserted below
            errors.append(error)

    threads = [threading.Thread(target=load, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count_rows(postgres_server, "cnaes", RELEASE) == 1359
    assert count_rows(postgres_server, "paises", RELEASE) == 255
    assert count_rows(postgres_server, "paises", "2025-05") == 255


def test_a_copy_failing_mid_table_fails_its_file_keeps_the_finished_ones_and_resumes(
    postgres_server: ServerUrl, landing: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = TABLES["estabelecimentos"]
    release = discover_release(landing, RELEASE)
    loader(postgres_server, tmp_path).load(spec, release)
    expected = count_rows(postgres_server, "estabelecimentos", RELEASE)
    real_copy = file_copier._copy_subbatch
    calls = itertools.count()

    def copy_failing_once(*args: object) -> object:
        if next(calls) == 12:  # some files into the table, with COPYs of others in flight
            raise RuntimeError("injected COPY failure")
        return real_copy(*args)

    monkeypatch.setattr(file_copier, "_copy_subbatch", copy_failing_once)
    small = TableLoader(
        postgres_server.url,
        LoadSettings(scratch_dir=tmp_path / "s", batch_rows=2000, subbatch_rows=1000),
        lambda _: None,
    )
    with pytest.raises(RuntimeError, match="injected COPY failure"):
        small.load(spec, release, RunInfo(dagster_run_id="broken"))
    files = query(
        postgres_server,
        """SELECT f.zip_name, f.status, f.error,
                  count(*) FILTER (WHERE b.status <> 'COMPLETED'),
                  count(*) FILTER (WHERE s.status <> 'COMPLETED')
           FROM cnpj_audit.table_load t JOIN cnpj_audit.file_load f ON f.table_load_id = t.id
           LEFT JOIN cnpj_audit.batch_load b ON b.file_load_id = f.id
           LEFT JOIN cnpj_audit.subbatch_load s ON s.batch_load_id = b.id
           WHERE t.dagster_run_id = 'broken' GROUP BY f.id""",
    )
    assert {status for _, status, *_ in files} == {"COMPLETED", "FAILED"}, files
    for zip_name, status, error, unfinished_batches, unfinished_subbatches in files:
        if status == "COMPLETED":
            assert unfinished_batches == unfinished_subbatches == 0, zip_name
        else:
            assert "injected COPY failure" in error, zip_name
    running = query(
        postgres_server,
        """SELECT count(*) FROM cnpj_audit.table_load t
           JOIN cnpj_audit.file_load f ON f.table_load_id = t.id
           JOIN cnpj_audit.batch_load b ON b.file_load_id = f.id
           JOIN cnpj_audit.subbatch_load s ON s.batch_load_id = b.id
           WHERE t.dagster_run_id = 'broken' AND 'RUNNING' IN (t.status, b.status, s.status)""",
    )[0][0]
    assert running == 0
    assert count_rows(postgres_server, "estabelecimentos", RELEASE) == expected

    monkeypatch.undo()
    small.load(spec, release, RunInfo(dagster_run_id="mended"))
    assert count_rows(postgres_server, "estabelecimentos", RELEASE) == expected
    assert duplicated_establishments(postgres_server) == 0
    reread = query(
        postgres_server,
        """SELECT f.zip_name FROM cnpj_audit.table_load t
           JOIN cnpj_audit.file_load f ON f.table_load_id = t.id
           JOIN cnpj_audit.batch_load b ON b.file_load_id = f.id
           WHERE t.dagster_run_id = 'mended'""",
    )
    completed = {zip_name for zip_name, status, *_ in files if status == "COMPLETED"}
    assert not completed & {zip_name for (zip_name,) in reread}, "finished files are not re-read"


def test_first_loads_at_once_on_a_fresh_database_all_create_their_tables(
    postgres_server: ServerUrl,
) -> None:
    """The release job starts two table loads at once; on a new database both make the schema."""
    ensure_database(postgres_server, "cnpj_fresh")
    url = postgres_server.database("cnpj_fresh")
    errors: list[str] = []

    def create(spec: TableSpec, start: threading.Barrier) -> None:
        with psycopg.connect(url, autocommit=True) as connection:
            start.wait()
            try:
                tables.ensure_parent(connection, spec)
            except psycopg.Error as error:
                errors.append(f"{spec.name}: {error}")

    try:
        for _ in range(3):
            with psycopg.connect(url, autocommit=True) as connection:
                connection.execute("DROP SCHEMA IF EXISTS cnpj CASCADE")
            start = threading.Barrier(len(TABLES))
            threads = [threading.Thread(target=create, args=(s, start)) for s in TABLES.values()]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            assert errors == []
            with psycopg.connect(url) as connection:
                created = connection.execute(
                    "SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                    "WHERE n.nspname = 'cnpj' AND c.relkind = 'p'"
                ).fetchone()
            assert created == (len(TABLES),)
    finally:
        with psycopg.connect(postgres_server.database("postgres"), autocommit=True) as connection:
            connection.execute("DROP DATABASE cnpj_fresh WITH (FORCE)")
