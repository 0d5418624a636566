"""Active time from client events: idle gaps excluded, nothing counted twice."""

from annotator.services.timing import active_seconds, events_merge


def _event(kind: str, seconds: float) -> dict:
    return {"type": kind, "t_ms": int(seconds * 1000), "data": {}}


def test_gaps_over_30_seconds_are_idle():
    events = [_event("shown", 0), _event("edit", 10), _event("edit", 50), _event("submit", 55)]
    assert active_seconds(events) == 15.0


def test_a_gap_after_an_away_event_is_not_counted():
    events = [_event("shown", 0), _event("edit", 5), _event("hidden", 6), _event("edit", 20), _event("submit", 21)]
    assert active_seconds(events) == 7.0


def test_two_overlapping_page_loads_count_each_instant_once():
    tab_one = [_event("shown", 0), _event("edit", 10), _event("edit", 20)]
    tab_two = [_event("shown", 5), _event("edit", 15), _event("submit", 25)]
    assert active_seconds(events_merge(tab_one, tab_two)) == 25.0


def test_merge_drops_exact_duplicates_and_sorts():
    merged = events_merge([_event("edit", 2), _event("shown", 0)], [_event("edit", 2), _event("submit", 3)])
    assert [event["type"] for event in merged] == ["shown", "edit", "submit"]
