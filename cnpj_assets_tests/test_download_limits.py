"""The download's limits on their own, with a clock the tests move: how many streams run at
once as stalls come and transfers flow, and how much time and how many stalls a file may
spend before it is given up."""

from __future__ import annotations

import threading
from contextlib import ExitStack

import pytest

from cnpj_assets.source.patience import FilePatience
from cnpj_assets.source.streams import StreamGate

EPISODE = 20.0


class Clock:
    """Time that passes only when a test says so."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def gate_with(clock: Clock, min_streams: int = 1, max_streams: int = 4) -> StreamGate:
    return StreamGate(min_streams, max_streams, EPISODE, lambda _: None, clock)


def test_each_stall_episode_takes_one_stream_away_and_flow_gives_them_back() -> None:
    clock = Clock()
    messages: list[str] = []
    gate = StreamGate(1, 4, EPISODE, messages.append, clock)
    assert gate.limit == 4
    gate.stalled()
    gate.stalled()  # a stream of the same episode: it was open before the cut
    clock.now += EPISODE / 2
    gate.stalled()
    assert gate.limit == 3
    for _ in range(4):
        clock.now += EPISODE
        gate.stalled()
    assert gate.limit == 1
    for _ in range(5):
        gate.flowed()
    assert gate.limit == 4
    assert messages == [
        "parallel streams 4 -> 3: a stream stalled",
        "parallel streams 3 -> 2: a stream stalled",
        "parallel streams 2 -> 1: a stream stalled",
        "parallel streams 1 -> 2: transfers flow",
        "parallel streams 2 -> 3: transfers flow",
        "parallel streams 3 -> 4: transfers flow",
    ]


def test_the_limit_holds_requests_back_until_a_place_is_free() -> None:
    clock = Clock()
    gate = gate_with(clock, max_streams=2)
    entered = threading.Event()

    def third_stream() -> None:
        with gate.stream():
            entered.set()

    with ExitStack() as streams:
        first = streams.enter_context(ExitStack())
        first.enter_context(gate.stream())
        streams.enter_context(gate.stream())
        gate.stalled()  # limit 1 with 2 running: the running ones go on
        waiting = threading.Thread(target=third_stream)
        waiting.start()
        assert not entered.wait(0.3)
        first.close()  # 1 running, limit 1: still no place
        assert not entered.wait(0.3)
        gate.flowed()  # limit 2: a place
        assert entered.wait(10)
        waiting.join(10)
        assert not waiting.is_alive()
    assert gate.active == 0


def test_the_limits_must_make_sense() -> None:
    with pytest.raises(ValueError, match=r"1 <= minimum \(3\) <= maximum \(2\)"):
        gate_with(Clock(), min_streams=3, max_streams=2)


def test_a_file_spends_only_the_time_it_downloads_and_is_given_up_past_its_limits() -> None:
    clock = Clock()
    patience = FilePatience(max_stalls=2, deadline_seconds=60, clock=clock)
    with patience.spending():
        clock.now += 25
        assert patience.time_left() == 35
    clock.now += 1_000  # waiting for a free stream costs the file nothing
    assert patience.spent() == 25 and patience.exhausted() is None
    patience.stalled()
    patience.stalled()
    assert patience.exhausted() is None
    patience.stalled()
    assert patience.exhausted() == "it stalled 3 times, more than the 2 allowed"
    with patience.spending():
        clock.now += 35
    assert patience.exhausted() == "its deadline of 60 s passed"
