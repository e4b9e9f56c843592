"""Who holds a pool's slots: steps that claimed one, and queued steps a slot was assigned to.

Dagster assigns a freed slot to the first queued step, which claims it on its next
check; until then the slot counts as taken. A run that died with an assigned step
blocks that slot as surely as one that died holding a claim.
"""

from __future__ import annotations

from dagster._utils.concurrency import ConcurrencyKeyInfo


def holders(info: ConcurrencyKeyInfo) -> dict[str, set[str]]:
    """The steps holding a slot of the pool, by run id."""
    held: dict[str, set[str]] = {}
    for slot in info.claimed_slots:
        held.setdefault(slot.run_id, set()).add(slot.step_key)
    for pending in info.pending_steps:
        if pending.assigned_timestamp is not None:
            held.setdefault(pending.run_id, set()).add(pending.step_key)
    return held
