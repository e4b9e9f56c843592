"""Metadata values shaped for the UI: measures it can plot, ids it must not.

The UI plots every int and float of a materialization across partitions. An audit id is
no measure (a plot of it only shows the sequence), so it goes out as text; durations and
rates are rounded, since `115631.99923423029 rows/s` reads worse and plots no better.
"""

from __future__ import annotations

import dagster as dg


def seconds(value: float) -> dg.FloatMetadataValue:
    """A duration, to the hundredth of a second."""
    return dg.MetadataValue.float(round(value, 2))


def rate(amount: float, seconds_taken: float, digits: int = 0) -> dg.FloatMetadataValue:
    """`amount` per second (0 when no time was measured), to `digits` decimals."""
    return dg.MetadataValue.float(round(amount / seconds_taken, digits) if seconds_taken else 0.0)


def audit_id(value: int) -> dg.TextMetadataValue:
    """An audit row's id, to join on: text, so the UI lists it and does not plot it."""
    return dg.MetadataValue.text(str(value))
