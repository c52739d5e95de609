from __future__ import annotations

from loadtest.soak.counts import counted


def test_counted_from_the_last_sample_before_t0() -> None:
    assert counted([(1, 100), (2, 110), (3, 130)], t0=1.5) == 30


def test_a_reset_adds_the_new_process_whole_count() -> None:
    # killed at 115 (its last scrape), restarted, counted 4 by its first scrape
    assert counted([(1, 100), (2, 115), (3, 4), (4, 10)], t0=1) == 15 + 4 + 6


def test_a_series_first_seen_after_t0_starts_from_zero() -> None:
    assert counted([(5, 3), (6, 8)], t0=1) == 8
