from __future__ import annotations

from loadtest.soak.counts import counted


def test_counted_from_the_last_sample_before_t0() -> None:
    assert counted([(1, 100), (2, 110), (3, 130)], t0=1.5) == 30


def test_a_reset_adds_the_new_process_whole_count() -> None:
    # killed at 115 (its last scrape), restarted, counted 4 by its first scrape
    assert counted([(1, 100), (2, 115), (3, 4), (4, 10)], t0=1) == 15 + 4 + 6


def test_a_series_first_seen_after_t0_starts_from_zero() -> None:
    assert counted([(5, 3), (6, 8)], t0=1) == 8


def test_unscraped_counts_what_clients_saw_answered_between_the_last_scrape_and_the_kill() -> None:
    from loadtest.soak.client import Record
    from loadtest.soak.counts import unscraped

    series = [({"instance": "a"}, [(1.0, 5.0), (2.0, 9.0), (4.0, 1.0)]), ({"instance": "b"}, [(2.9, 7.0)])]
    answered = [Record("good", t - 0.01, t, 200, "", 0, "") for t in (1.5, 2.2, 2.6, 3.5)]
    assert unscraped(series, [{"killed_at": 3.0, "instance": "a"}], answered) == 2  # 2.2 and 2.6
    assert unscraped(series, [{"killed_at": 3.0}], answered) == 0  # last scrape of any instance: 2.9
    late = [Record("good", 2.95, 3.02, 200, "", 0, ""), Record("good", 2.95, 3.5, 200, "", 1, "ProtocolError")]
    # recorded after the kill: the first without a retry (the killed process answered it), the second retried
    assert unscraped(series, [{"killed_at": 3.0, "instance": "a"}], answered + late) == 3
