"""HTTP API benchmark: `cnpj-assets serve` under N concurrent clients, then during a load.

Usage: CNPJ_HOME=... python benchmarks/bench_api.py --scale 0.02 [--clients 8]
       [--seconds 30] [--workers 2] [--landing DIR]

1. Makes sure a synthetic release of `--scale` is loaded and published (writes and loads
   it if not), and that the next month's release is in the landing folder, evolved from
   it (`fake-release --previous`), not loaded yet.
2. Starts `cnpj-assets serve` on a free loopback port, samples known CNPJs of the
   published release and valid CNPJs that are in no release.
3. Steady phase: `--clients` threads, each with its own keep-alive connection, send a
   mix of lookups of random known CNPJs (85 in 100), of absent ones (10 in 100) and of
   searches (`/?uf=..&limit=10`, 5 in 100) for `--seconds`: requests/s, p50/p95/p99
   latency of the lookups and of the searches, errors.
4. Load phase: the same clients while `cnpj-assets load` loads and publishes the next
   release (bounded by `--load-timeout`): every answer must be 200 (known, search) or 404
   (absent, or known but gone in the new release), no request may wait more than 2 s,
   and the served release (header X-Cnpj-Release) must switch once: no request started
   after a client saw the new release reads the old one.
The reference, measured in the same run: the same lookups as SQL statements over one
connection of this process, sequentially (what the database alone gives); printed last
is `ratio api/sql`, requests/s of the API over statements/s of the SQL.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil
import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import postgres_cpu_seconds, process_cpu_seconds  # noqa: E402

from cnpj_assets.api.pool import configure, session_options  # noqa: E402
from cnpj_assets.audit.queries import published_release  # noqa: E402
from cnpj_assets.cnpj_number import check_digits  # noqa: E402
from cnpj_assets.lineage import parse_cnpj  # noqa: E402
from cnpj_assets.postgres.server import server_url  # noqa: E402
from cnpj_assets.read.establishment import find_establishment  # noqa: E402
from cnpj_assets.synthetic import write_release  # noqa: E402
from cnpj_assets.synthetic.evolve import evolve_release  # noqa: E402
from cnpj_assets.synthetic.scale import companies_at_scale  # noqa: E402

FIRST = "2026-10"
MAX_WAIT = 2.0
ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True)
class Answer:
    """One request as a client saw it."""

    started: float
    ended: float
    kind: str  # known, absent or search
    cnpj: str  # the CNPJ looked up, or the search's query string
    status: int
    release: str | None

    @property
    def seconds(self) -> float:
        return self.ended - self.started


@dataclass
class Phase:
    answers: list[Answer] = field(default_factory=list)
    seconds: float = 0.0


def executable(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def next_month(release: str) -> str:
    year, month = map(int, release.split("-"))
    return f"{year + month // 12}-{month % 12 + 1:02d}"


def cli(*arguments: str) -> None:
    subprocess.run([executable("cnpj-assets"), *arguments], check=True)


def prepare(url: str, landing: Path, scale: float) -> tuple[str, str]:
    """The published release (loaded here on a fresh home) and the next one, in landing."""
    with psycopg.connect(url) as connection:
        current = published_release(connection)
    if current is None:
        if not (landing / FIRST).is_dir():
            write_release(FIRST, companies_at_scale(scale), landing, seed=1)
        cli("load", "--release", FIRST, "--landing", str(landing))
        current = FIRST
    following = next_month(current)
    if not (landing / following).is_dir():
        evolve_release(landing / current, following, landing, seed=int(following[-2:]))
    return current, following


def sample(url: str, release: str, count: int) -> tuple[list[str], list[str]]:
    """Known CNPJs of the release, and valid CNPJs (right check digits) in no release."""
    with psycopg.connect(url) as connection:
        known = [
            row[0]
            for row in connection.execute(
                "SELECT cnpj_basico || cnpj_ordem || cnpj_dv FROM cnpj.estabelecimentos "
                "WHERE release = %s ORDER BY random() LIMIT %s",
                (release, count),
            )
        ]
        rng = random.Random(7)
        candidates = []
        for _ in range(count):
            base = "".join(rng.choice(ALPHABET) for _ in range(8)) + "0001"
            candidates.append(base + check_digits(base))
        present = {
            row[0]
            for row in connection.execute(
                "SELECT cnpj_basico || cnpj_ordem || cnpj_dv FROM cnpj.estabelecimentos "
                "WHERE cnpj_basico = ANY(%s)",
                ([c[:8] for c in candidates],),
            )
        }
    return known, [c for c in candidates if c not in present]


def sql_rate(url: str, known: list[str], seconds: float) -> float:
    """The reference: lookups as statements, one session set up as the API's, one after
    the other."""
    queries = [parse_cnpj(c) for c in known]
    with psycopg.connect(url, **session_options(5000)) as connection:
        configure(connection)
        done, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            find_establishment(connection, queries[done % len(queries)])
            done += 1
    return done / (time.perf_counter() - started)


def client(
    port: int, targets: dict[str, list[str]], stop: threading.Event, out: list[Answer]
) -> None:
    rng = random.Random()
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    while not stop.is_set():
        draw = rng.random()
        kind = "known" if draw < 0.85 else "absent" if draw < 0.95 else "search"
        cnpj = rng.choice(targets[kind])
        started = time.perf_counter()
        try:
            connection.request("GET", f"/{cnpj}")
            response = connection.getresponse()
            response.read()
            status, release = response.status, response.getheader("X-Cnpj-Release")
        except (OSError, http.client.HTTPException):
            connection.close()
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            status, release = 0, None
        out.append(Answer(started, time.perf_counter(), kind, cnpj, status, release))
    connection.close()


def run_clients(
    port: int, targets: dict[str, list[str]], clients: int, until: threading.Event
) -> Phase:
    results: list[list[Answer]] = [[] for _ in range(clients)]
    threads = [
        threading.Thread(target=client, args=(port, targets, until, results[i]))
        for i in range(clients)
    ]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return Phase([a for r in results for a in r], time.perf_counter() - started)


def tree_cpu_seconds(pid: int) -> float:
    """CPU of a process and its children (uvicorn's workers), user and system."""
    root = psutil.Process(pid)
    total = 0.0
    for process in (root, *root.children(recursive=True)):
        with contextlib.suppress(psutil.NoSuchProcess):
            times = process.cpu_times()
            total += times.user + times.system
    return total


class CpuMeter:
    """CPU the API, its PostgreSQL and the clients used between `start` and `per_request`:
    a measure the other work of a shared machine does not inflate the way it does latency."""

    def __init__(self, server_pid: int, postmaster: int) -> None:
        self.server_pid, self.postmaster = server_pid, postmaster
        self.start()

    def _now(self) -> tuple[float, float, float]:
        return (
            tree_cpu_seconds(self.server_pid),
            postgres_cpu_seconds(self.postmaster),
            process_cpu_seconds(),
        )

    def start(self) -> None:
        self.started = self._now()

    def per_request(self, requests: int) -> str:
        used = [(b - a) * 1000 / requests for a, b in zip(self.started, self._now(), strict=True)]
        server = used[0] + used[1]
        return (
            f"CPU per request: API {used[0]:.2f} ms + PostgreSQL {used[1]:.2f} ms "
            f"(clients {used[2]:.2f} ms): the server side alone fills 2 cores at "
            f"{2000 / server:,.0f} req/s"
        )


def timed_stop(seconds: float) -> threading.Event:
    stop = threading.Event()
    threading.Timer(seconds, stop.set).start()
    return stop


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def report(name: str, phase: Phase) -> float:
    answers = phase.answers
    rate = len(answers) / phase.seconds
    errors = sum(1 for a in answers if a.status not in (200, 404))
    print(
        f"{name}: {len(answers):,} requests in {phase.seconds:.1f} s = {rate:,.0f} req/s; "
        f"errors {errors}"
    )
    for kind in ("known", "absent", "search"):
        times = [a.seconds * 1000 for a in answers if a.kind == kind]
        print(
            f"  {kind:<6} {len(times):>7,}: p50 {percentile(times, 0.5):.1f} ms, "
            f"p95 {percentile(times, 0.95):.1f} ms, p99 {percentile(times, 0.99):.1f} ms, "
            f"max {max(times):.0f} ms (mean {statistics.fmean(times):.1f})"
        )
    return rate


def check_load_phase(url: str, phase: Phase, old: str, new: str) -> list[str]:
    """What went wrong while the next release was loaded and published, if anything."""
    with psycopg.connect(url) as connection:
        gone = {
            c
            for (c,) in connection.execute(
                "SELECT c FROM unnest(%s::text[]) AS c WHERE NOT EXISTS (SELECT 1 FROM "
                "cnpj.estabelecimentos e WHERE e.release = %s AND e.cnpj_basico = left(c, 8) "
                "AND e.cnpj_ordem = substr(c, 9, 4) AND e.cnpj_dv = right(c, 2))",
                (sorted({a.cnpj for a in phase.answers if a.kind == "known"}), new),
            )
        }
    problems = []
    for a in phase.answers:
        expected = {200, 404} if a.cnpj in gone else {404} if a.kind == "absent" else {200}
        if a.status not in expected:
            problems.append(f"{a.cnpj} answered {a.status}")
    seen_new = [a.ended for a in phase.answers if a.release == new]
    first_seen = min(seen_new, default=float("inf"))
    slow = [a for a in phase.answers if a.seconds > MAX_WAIT]
    if slow:
        when = ", ".join(f"{a.started - first_seen:+.0f}" for a in slow[:10])
        problems.append(
            f"{len(slow)} request(s) waited more than {MAX_WAIT} s "
            f"(max {max(a.seconds for a in slow):.1f} s), "
            f"started at these seconds from the first answer of {new}: {when}"
        )
    if not seen_new:
        problems.append(f"{new} was never served")
    else:
        late_old = [a for a in phase.answers if a.release == old and a.started > first_seen]
        if late_old:
            problems.append(f"{len(late_old)} request(s) read {old} after {new} was served")
    releases = {a.release for a in phase.answers if a.release}
    if releases - {old, new}:
        problems.append(f"unexpected releases served: {sorted(releases - {old, new})}")
    return problems[:20]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=0.02, help="share of a real release")
    parser.add_argument("--clients", type=int, default=8, help="concurrent clients")
    parser.add_argument("--seconds", type=float, default=30, help="length of the steady phase")
    parser.add_argument("--workers", type=int, default=2, help="uvicorn worker processes")
    parser.add_argument("--load-timeout", type=float, default=1800, help="bound of the load")
    parser.add_argument("--landing", help="landing folder (default: $CNPJ_HOME/landing)")
    parser.add_argument("--steady-only", action="store_true", help="skip the load phase")
    args = parser.parse_args()
    if not os.environ.get("CNPJ_HOME"):
        sys.exit("set CNPJ_HOME to a folder of the benchmark's own")
    landing = Path(args.landing or Path(os.environ["CNPJ_HOME"]) / "landing")
    url = server_url().url
    old, new = prepare(url, landing, args.scale)
    known, absent = sample(url, old, 5000)
    with psycopg.connect(url) as connection:
        states = [
            r[0]
            for r in connection.execute("SELECT DISTINCT uf FROM cnpj_current.estabelecimentos")
        ]
    targets = {"known": known, "absent": absent, "search": [f"?uf={uf}&limit=10" for uf in states]}
    print(f"serving {old}; {len(known):,} known and {len(absent):,} absent CNPJs; next {new}")

    port = free_port()
    server = subprocess.Popen(
        [executable("cnpj-assets"), "serve", "--port", str(port), "--workers", str(args.workers)],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                probe = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                probe.request("GET", "/healthz")
                if probe.getresponse().status == 200:
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        reference = sql_rate(url, known, min(args.seconds, 10))
        print(f"reference: SQL lookups, one connection: {reference:,.0f} statements/s")
        postmaster = int(
            (Path(os.environ["CNPJ_HOME"]) / "pgdata" / "postmaster.pid").read_text().split()[0]
        )
        meter = CpuMeter(server.pid, postmaster)
        steady = run_clients(port, targets, args.clients, timed_stop(args.seconds))
        rate = report(f"steady, {args.clients} clients", steady)
        print(meter.per_request(len(steady.answers)))
        print(
            f"load average (1 min) at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores"
        )
        print(f"ratio api/sql: {rate / reference:.2f}")
        if args.steady_only:
            return

        loading = threading.Event()
        load = subprocess.Popen(
            [executable("cnpj-assets"), "load", "--release", new, "--landing", str(landing)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def watch() -> None:
            try:
                load.wait(timeout=args.load_timeout)
            except subprocess.TimeoutExpired:
                load.terminate()
                load.wait()
            time.sleep(2)  # a little past the end: answers after the publication
            loading.set()

        threading.Thread(target=watch).start()
        during = run_clients(port, targets, args.clients, loading)
        report(f"during the load of {new}", during)
        problems = check_load_phase(url, during, old, new)
        served = sorted({a.release for a in during.answers if a.release})
        print(f"load exit code {load.returncode}; releases served during it: {served}")
        print("load phase: " + ("OK" if not problems else "PROBLEMS\n  " + "\n  ".join(problems)))
    finally:
        os.killpg(server.pid, 15)
        server.wait(timeout=30)


if __name__ == "__main__":
    main()
