"""A load's messages into the run's log, or onto stderr when that log cannot take them.

The run's log lives in PostgreSQL. When the server is lost, `context.log.info` spends
~23 s retrying (two writes of ~11.4 s each), then raises: a load's "connection lost;
retrying" notice killed the load it announced, and never reached anyone. Here a
message goes to stderr, where the CLI's user or the daemon's log sees it, when the log
refused it, or refused one in the last 30 s, or Dagster retried its storage in the
last 15 s, or the run is stopping (its log may be the reason).
"""

from __future__ import annotations

import sys
import time
from datetime import datetime

import dagster as dg

from cnpj_assets.runs.lost_server import storage_retried_within, watch_storage_retries
from cnpj_assets.runs.stopping import StopRequest

QUIET_SECONDS = 30.0  # after a refused message, how long the log is left alone
STORAGE_RETRY_SECONDS = 15.0  # after a retry of Dagster's storage, how long too


class RunLogOrStderr:
    """A progress callback: `log.info`, falling back to stderr."""

    def __init__(self, log: dg.DagsterLogManager, stop: StopRequest) -> None:
        self._log = log
        self._stop = stop
        self._quiet_until = 0.0
        watch_storage_retries()

    def _log_usable(self) -> bool:
        return (
            not self._stop.is_set()
            and time.monotonic() >= self._quiet_until
            and not storage_retried_within(STORAGE_RETRY_SECONDS)
        )

    def __call__(self, message: str) -> None:
        note = ""
        if self._log_usable():
            try:
                self._log.info(message)
                return
            except Exception as error:  # the run's log is down; the message must not be lost
                self._quiet_until = time.monotonic() + QUIET_SECONDS
                note = f" (the run's log is unreachable: {type(error).__name__})"
        stamp = datetime.now().astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
        print(f"{stamp} - cnpj_assets - {message}{note}", file=sys.stderr, flush=True)
