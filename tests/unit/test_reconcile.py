"""The reconciler's pure part: which offsets of a range the ledger does not account for."""

from __future__ import annotations

from streams.reconcile import missing_ranges


def test_nothing_missing_when_every_offset_is_accounted_for() -> None:
    assert missing_ranges(5, 10, {5, 6, 7, 8, 9}) == []


def test_an_empty_range_has_nothing_missing() -> None:
    assert missing_ranges(7, 7, set()) == []


def test_runs_of_missing_offsets_come_back_as_half_open_ranges() -> None:
    assert missing_ranges(0, 10, {3, 4, 8}) == [(0, 3), (5, 8), (9, 10)]


def test_offsets_outside_the_range_do_not_count() -> None:
    assert missing_ranges(10, 13, {9, 13, 11}) == [(10, 11), (12, 13)]
