"""Data made in a background process: the same items, and a failure that surfaces instead of a hang."""

import os

import pytest

from shapeworld.background import BackgroundError, background_iterate


def counting(n: int):
    yield from range(n)


def failing_after(n: int):
    yield from range(n)
    raise ValueError("scene 3 has no groups")


def dying():
    os._exit(3)
    yield


def test_the_items_are_those_of_the_stream_and_a_finite_stream_ends():
    with background_iterate(counting, 5) as items:
        assert list(items) == [0, 1, 2, 3, 4]


def test_an_error_in_the_background_is_raised_where_the_items_are_used():
    with background_iterate(failing_after, 2) as items:
        assert [next(items), next(items)] == [0, 1]
        with pytest.raises(BackgroundError, match="ValueError: scene 3 has no groups"):
            next(items)


def test_a_background_process_that_dies_is_reported_not_waited_for():
    with background_iterate(dying) as items, pytest.raises(BackgroundError, match="exit code 3"):
        next(items)


def test_without_a_process_the_stream_runs_here():
    with background_iterate(counting, 3, enabled=False) as items:
        assert list(items) == [0, 1, 2]
