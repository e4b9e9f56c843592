"""Which process runs a run, and whether it is still alive.

The executor tags each run with its process: host, pid and the process's start time
(a pid alone is reused). A run still STARTED whose process is gone from this host
died without a word (kill -9, a lost server that crashed its storage, a reboot): it
can hold the `cnpj_postgres` slots forever. On another host the process cannot be
seen from here, so such a run is never called dead.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import asdict, dataclass
from enum import Enum

import psutil

WORKER_TAG = "cnpj_assets/worker"
_START_TOLERANCE_SECONDS = 1.0


class Liveness(Enum):
    ALIVE = "alive"
    GONE = "gone"
    ELSEWHERE = "on another host"


@dataclass(frozen=True)
class RunWorker:
    """A process that executes a run."""

    host: str
    pid: int
    started: float  # the process's start time, seconds since the epoch

    @classmethod
    def current(cls) -> RunWorker:
        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    @classmethod
    def from_tags(cls, tags: dict[str, str]) -> RunWorker | None:
        """The worker a run's tags name, or None (a run of another executor, or older)."""
        value = tags.get(WORKER_TAG)
        if not value:
            return None
        fields = json.loads(value)
        return cls(str(fields["host"]), int(fields["pid"]), float(fields["started"]))

    def tag(self) -> dict[str, str]:
        return {WORKER_TAG: json.dumps(asdict(self))}

    def liveness(self) -> Liveness:
        if self.host != socket.gethostname():
            return Liveness.ELSEWHERE
        try:
            process = psutil.Process(self.pid)
            started, status = process.create_time(), process.status()
        except psutil.NoSuchProcess:
            return Liveness.GONE
        if abs(started - self.started) > _START_TOLERANCE_SECONDS:
            return Liveness.GONE  # the pid now belongs to another process
        return Liveness.GONE if status == psutil.STATUS_ZOMBIE else Liveness.ALIVE

    def __str__(self) -> str:
        return f"process {self.pid} on {self.host}"
