"""The rule that evens out keep-alive connections over the workers (``ConnectionShares``),
on the shared array the supervisor gives its workers; the running service is in
``tests/contract/test_workers.py``."""

from __future__ import annotations

import multiprocessing
from typing import Any

import pytest

from app.connections import ConnectionShares


def _counts(*values: int) -> Any:
    counts = multiprocessing.get_context("spawn").RawArray("i", len(values))
    counts[:] = list(values)
    return counts


def test_a_worker_above_its_share_moves_one_connection_at_a_time() -> None:
    counts = _counts(0, 0)
    mine = ConnectionShares(counts, 0, 8080)
    mine.held(2)  # both connections of a 2-worker Batch Transform job landed here

    assert mine.should_leave(2) is True
    assert list(counts) == [1, 0]  # the others see the move at once
    # Its second connection asks before the first has closed: it stays.
    assert mine.should_leave(2) is False
    mine.left()  # the first one closed ...
    mine.held(1)
    assert list(counts) == [1, 0]
    assert mine.should_leave(1) is False


@pytest.mark.parametrize(
    ("mine", "others", "leaves"),
    [
        (4, [4], False),  # even
        (5, [3], True),  # share ceil(8 / 2) = 4
        (5, [4], False),  # share ceil(9 / 2) = 5: an odd total leaves one worker one ahead
        (3, [1, 1], True),  # share ceil(5 / 3) = 2
        (2, [1, 1], False),  # share ceil(4 / 3) = 2
        (1, [0], False),  # a single connection never moves: nowhere better to go
        (2, [5], False),  # below its share: the fuller worker moves its own
    ],
)
def test_the_share_is_the_total_over_the_workers_rounded_up(
    mine: int, others: list[int], leaves: bool
) -> None:
    counts = _counts(0, *others)
    shares = ConnectionShares(counts, 0, 8080)
    shares.held(mine)

    assert shares.should_leave(mine) is leaves


def test_a_replaced_worker_starts_from_an_empty_slot() -> None:
    counts = _counts(3, 7)  # the slot of worker 2, who died holding 7 connections

    ConnectionShares(counts, 1, 8080)

    assert list(counts) == [3, 0]


def test_connections_told_to_leave_are_not_counted_as_held() -> None:
    counts = _counts(0, 0)
    shares = ConnectionShares(counts, 0, 8080)
    shares.held(3)
    assert shares.should_leave(3) is True  # 3 against 0: one leaves ...

    shares.held(4)  # ... while a new connection arrives here too
    assert list(counts) == [3, 0]
    assert shares.should_leave(4) is True  # still above ceil(3 / 2): another one leaves
    assert list(counts) == [2, 0]
