"""Active time on a task from the client's events.

Every event carries `t_ms`, the browser's wall clock in epoch milliseconds (`Date.now()`), so the
events of several page loads of one task lie on one timeline. Events are merged and de-duplicated
by (type, t_ms, data) before anything is summed: an event sent twice (a retried request, events
resent with the submit) counts once, and two page loads that overlap in time (a second tab) add
each instant at most once, because active time is measured on the merged timeline, never per load.
Active time is the sum of the gaps between consecutive events that are at most 30 s long; a longer
gap is a person away. A gap that starts at an `idle` or `hidden` event is not counted either: the
page said the person left.
"""

from __future__ import annotations

import json
from itertools import pairwise
from typing import TypedDict

IDLE_GAP_MS = 30_000
AWAY_EVENTS = frozenset({"idle", "hidden"})
MAX_EVENTS_PER_TASK = 5_000


class ClientEvent(TypedDict):
    type: str
    t_ms: int
    data: dict


def events_merge(recorded: list[ClientEvent], incoming: list[ClientEvent]) -> list[ClientEvent]:
    """All events of one assignment, each once, in time order; the oldest kept past the cap."""
    seen: set[tuple[str, int, str]] = set()
    merged = []
    for event in sorted([*recorded, *incoming], key=lambda event: event["t_ms"]):
        key = (event["type"], event["t_ms"], json.dumps(event.get("data") or {}, sort_keys=True))
        if key not in seen:
            seen.add(key)
            merged.append(event)
    return merged[:MAX_EVENTS_PER_TASK]


def active_seconds(events: list[ClientEvent]) -> float:
    """Seconds between consecutive events, skipping idle gaps (> 30 s) and gaps after an away event."""
    ordered = sorted(events, key=lambda event: event["t_ms"])
    active_ms = sum(
        later["t_ms"] - earlier["t_ms"]
        for earlier, later in pairwise(ordered)
        if later["t_ms"] - earlier["t_ms"] <= IDLE_GAP_MS and earlier["type"] not in AWAY_EVENTS
    )
    return active_ms / 1000
