"""The benchmark's core layout follows the cores the process may use, never fixed numbers."""

from __future__ import annotations

from bench.cores import CoreLayout, choose_cores


def test_two_cores_split_target_and_drivers() -> None:
    assert choose_cores({0, 1}) == CoreLayout(frozenset({0}), frozenset({1}))


def test_the_allowed_cores_are_used_whatever_their_numbers() -> None:
    assert choose_cores({5, 9}) == CoreLayout(frozenset({5}), frozenset({9}))


def test_one_core_per_worker_and_the_drivers_keep_one() -> None:
    assert choose_cores({0, 1, 2, 3}, target_workers=2) == CoreLayout(frozenset({0, 1}), frozenset({2, 3}))
    assert choose_cores({0, 1, 2}, target_workers=8) == CoreLayout(frozenset({0, 1}), frozenset({2}))


def test_a_single_core_pins_nothing() -> None:
    assert choose_cores({3}) == CoreLayout(frozenset(), frozenset())


def test_the_default_reads_the_affinity_of_this_process() -> None:
    layout = choose_cores()
    assert layout.target.isdisjoint(layout.driver)
