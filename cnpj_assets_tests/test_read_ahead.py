"""Reading ahead: the next file's DuckDB read runs while the current file is COPYed.

What a user relies on: every file still gives all its rows, in order, each under its own
file; a file that fails to read fails as itself, after the file before it is complete;
and stopping a load stops the threads that were reading ahead.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from cnpj_assets.landing import ReleaseFile
from cnpj_assets.load import loader
from cnpj_assets.reader import ReaderSettings, extract_member
from cnpj_assets.reader.prefetch import Prefetched
from cnpj_assets.reader.reader import FileRead
from cnpj_assets.specs import TABLES
from cnpj_assets_tests.helpers import make_zip

SETTINGS = ReaderSettings(batch_rows=2)


def cnaes_members(scratch: Path, rows_per_file: list[int]) -> list[tuple[ReleaseFile, object]]:
    """Extracted cnaes members, file i holding codes i*1000, i*1000+1, ..."""
    members = []
    for number, rows in enumerate(rows_per_file):
        lines = [f'"{number * 1000 + row:07d}";"atividade {number}-{row}"' for row in range(rows)]
        zip_path = make_zip(scratch / f"Cnaes{number}.zip", ("\n".join(lines) + "\n").encode())
        release_file = ReleaseFile("cnaes", zip_path, zip_path.stat().st_size, 0.0)
        members.append((release_file, extract_member(zip_path, scratch / "members")))
    return members


def until(condition, seconds: float = 10.0) -> bool:
    """Poll `condition` until it holds or `seconds` pass: threads need a moment to start."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return condition()


def test_a_prefetched_stream_starts_before_it_is_asked_and_hands_over_errors_in_order() -> None:
    started = threading.Event()

    def items() -> Iterator[int]:
        started.set()
        yield 1
        yield 2
        raise ValueError("the third item cannot be read")

    stream = Prefetched(items())
    try:
        assert started.wait(10), "the producer did not start until asked"
        assert next(stream) == 1
        assert next(stream) == 2
        with pytest.raises(ValueError, match="third item"):
            next(stream)
        with pytest.raises(StopIteration):
            next(stream)
    finally:
        stream.close()


def prefetch_threads_since(before: set[threading.Thread]) -> list[threading.Thread]:
    """The read-ahead threads started since `before`: this test's, not another's."""
    return [t for t in threading.enumerate() if t.name == "prefetch" and t not in before]


def test_closing_a_prefetched_stream_stops_its_thread_and_cleans_up_there() -> None:
    cleaned_up_in: list[str] = []

    def endless() -> Iterator[int]:
        try:
            number = 0
            while True:
                number += 1
                yield number
        finally:
            cleaned_up_in.append(threading.current_thread().name)

    before = set(threading.enumerate())
    stream = Prefetched(endless())
    assert next(stream) == 1
    (started,) = prefetch_threads_since(before)
    stream.close()
    assert cleaned_up_in == ["prefetch"]
    assert not started.is_alive()


def test_the_next_file_is_read_while_the_current_one_is_consumed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reads: list[FileRead] = []
    real_read_member = loader.read_member

    def recorded(*args, **kwargs) -> FileRead:
        reads.append(real_read_member(*args, **kwargs))
        return reads[-1]

    monkeypatch.setattr(loader, "read_member", recorded)
    members = cnaes_members(tmp_path, [5, 3, 4])
    steps = loader._read_steps(TABLES["cnaes"], iter(members), SETTINGS)
    try:
        consumed = [next(steps), next(steps), next(steps)]  # opening, two of its 3 batches
        assert [step.file.zip_name for step in consumed] == ["Cnaes0.zip"] * 3
        assert until(lambda: len(reads) == 2 and reads[1]._started), (
            "the second file's read did not start while the first was being consumed"
        )
        consumed.extend(steps)
    finally:
        steps.close()
    by_file: dict[str, list[str]] = {}
    for step in consumed:
        rows = by_file.setdefault(step.file.zip_name, [])
        if step.batch is not None:
            rows.extend(step.batch.data.column("codigo").to_pylist())
    assert list(by_file) == ["Cnaes0.zip", "Cnaes1.zip", "Cnaes2.zip"]
    assert by_file["Cnaes1.zip"] == ["0001000", "0001001", "0001002"]
    assert [len(rows) for rows in by_file.values()] == [5, 3, 4]
    assert [read.result.rows for read in reads] == [5, 3, 4]


def test_a_file_that_fails_to_read_fails_as_itself_after_the_file_before_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_batches = FileRead.batches

    def failing_on_the_second_file(self: FileRead):
        if self.member.zip_path.name == "Cnaes1.zip":
            raise RuntimeError("DuckDB cannot read Cnaes1.zip")
        yield from real_batches(self)

    monkeypatch.setattr(FileRead, "batches", failing_on_the_second_file)
    members = cnaes_members(tmp_path, [5, 3])
    steps = loader._read_steps(TABLES["cnaes"], iter(members), SETTINGS)
    seen: list[tuple[str, int]] = []
    with pytest.raises(RuntimeError, match="Cnaes1.zip") as failure:
        for step in steps:
            seen.append((step.file.zip_name, 0 if step.batch is None else step.batch.data.num_rows))
    steps.close()
    assert seen == [("Cnaes0.zip", 0), ("Cnaes0.zip", 2), ("Cnaes0.zip", 2), ("Cnaes0.zip", 1)] + [
        ("Cnaes1.zip", 0)
    ], f"the error surfaced at the wrong step: {failure.value}"


def test_stopping_mid_file_stops_the_reads_started_ahead(tmp_path: Path) -> None:
    members = cnaes_members(tmp_path, [6, 6, 6])
    before = set(threading.enumerate())
    steps = loader._read_steps(TABLES["cnaes"], iter(members), SETTINGS)
    next(steps)
    next(steps)
    started = prefetch_threads_since(before)
    assert started, "no read was started ahead"
    steps.close()
    assert until(lambda: not any(t.is_alive() for t in started))
