from __future__ import annotations

from pathlib import Path

from loadtest.report.soak import write
from loadtest.soak.analyze import goals, growth, summarize
from loadtest.soak.client import Record, retry_policy
from loadtest.soak.schedule import Schedule


def results() -> dict:
    schedule = Schedule(70, 2, 1, 1000, ())
    faults = [{"at_s": 10, "kind": "gateway_kill", "started": 10.0, "ended": 11.0, "killed_at": 10.0,
               "back_at": 11.0, "down_s": 1.0, "error": ""},
              {"at_s": 20, "kind": "malformed_burst", "started": 20.0, "ended": 20.5, "sent": 3,
               "codes": {"400": 3}, "all_400": True, "error": ""}]
    records = [Record("good", t + 0.5, t + 0.51, 200, "", 0, "", f"u{int(t) % 3}", "a") for t in range(70)]
    records.append(Record("good", 9.9, 11.5, 200, "", 2, "ProtocolError;NewConnectionError", "u0", "a"))
    summary = summarize(records, faults, schedule, t0=0.0)
    # Every 5 s: the gateway restarted by its kill at 10 s (another pid), triton-1 throughout with one more
    # descriptor from 5 s on.
    resources = [{"t": t, "role": "gateway", "pid": 1 if t < 10 else 2, "rss_kib": 1000, "fds": 9}
                 for t in range(0, 70, 5)] + [{"t": t, "role": "triton-1", "pid": 5, "rss_kib": 2048 + t, "fds":
                                               40 if t == 0 else 41} for t in range(0, 70, 5)]
    usage = growth({"gateway": {"pid": 1, "rss_kib": 1000, "fds": 9}, "triton-1": {"pid": 5, "rss_kib": 2048,
                                                                                    "fds": 40}},
                   {"gateway": {"pid": 2, "rss_kib": 1000, "fds": 9}, "triton-1": {"pid": 5, "rss_kib": 2120,
                                                                                   "fds": 41}}, resources, 70.0)
    counts = {"answered": 71, "triton": 71.0, "gateway": 70.0, "diff": {"triton": 0, "gateway": -1},
              "unscraped": {"triton": 0, "gateway": 1}, "exact": False, "accounted": True, "detail": "x",
              "locust_stats": {"requests": 71, "failures": 0}, "locust_records": 71, "locust_answered": 71,
              "canary_answered": 0, "records_match_stats": True}
    return {"schedule": schedule.to_json(), "faults": faults, "summary": summary, "counts": counts, "usage": usage,
            "resources": resources,
            "healthy_at_end": True, "goals": goals(summary, counts, usage, faults, schedule, True),
            "run": {"repo": "r", "arms": ["a", "b"], "replicas": 2, "cpu": "cpu", "python": "3.11", "t0": 0.0,
                    "end": 70.0, "rate_source": "70% of the capacity plans' one-replica capacity"},
            "locust": {"returncode": 0, "partial": None, "retry_policy": retry_policy()}}


def test_the_report_states_goals_faults_fates_and_what_is_not_done(tmp_path: Path) -> None:
    md = write(results(), tmp_path, "invoke soak --schedule short").read_text()
    assert "| no request lost except those in flight at a kill, each accounted for | met |" in md
    assert "| Locust and Prometheus agree exactly | MISSED |" in md
    assert "| Locust's statistics and its per-request records agree | met |" in md
    assert "| Locust (its own statistics) | 71 |" in md and "| gateway (Prometheus) | 70 | -1 |" in md
    assert "2 requests/s (70% of the capacity plans' one-replica capacity) from 1 Locust users" in md
    assert "HTTPAdapter(max_retries=Retry(" in md and "POST is retried" in md and "PARTIAL" not in md
    assert "| #1 gateway_kill | 1 | 0 | 1 | 0 | – |" in md  # in flight at the kill, answered after a retry
    assert "gateway killed and restarted; ready again after 1.0 s" in md and "3 sent, answers {'400': 3}" in md
    assert "## Not yet done" in md and "Locust process" in md
    assert "Command: `invoke soak --schedule short`" in md and "| 1 | 10 |" in md  # minute 1 of the run
    html = (tmp_path / "soak.html").read_text()
    assert "<img src=\"soak-traffic.png\"" in html and (tmp_path / "soak-latency.png").stat().st_size > 0


def test_an_interrupted_soak_says_so_first_with_the_time_reached_and_the_faults_not_run(tmp_path: Path) -> None:
    cut = results()
    cut["interrupted"] = {"at": 40.0, "reached_s": 40.0, "not_run": [
        {"at_s": 30, "kind": "canary", "cut_short": True}, {"at_s": 50, "kind": "publish_version", "cut_short": False}]}
    md = write(cut, tmp_path).read_text()
    assert md.index("## PARTIAL: interrupted") < md.index("## Goals")
    assert "40 s into the 70 s schedule" in md
    assert "| 30 | canary | cut short |" in md and "| 50 | publish_version | not run |" in md


def test_the_run_names_the_code_and_cpu_it_came_from(tmp_path: Path) -> None:
    from serving.provenance import SCHEMAS, provenance

    md = write({"provenance": provenance("soak"), **results()}, tmp_path, "").read_text()
    assert f"soak report schema {SCHEMAS['soak']}." in md and "Measured on " in md


def test_memory_and_descriptors_over_the_load_are_charted_beside_their_table(tmp_path: Path) -> None:
    import matplotlib.image

    md = write(results(), tmp_path).read_text()
    section = md[md.index("## Memory and descriptors"):md.index("## A/B stickiness")]
    assert "Sampled every 5 s over the load" in section
    # triton-1: RSS 2.0 (loaded 2.0) -> 2.1 MiB, peak 2.1; descriptors 40 -> 41, +1 at 5 s, then flat in both halves
    assert "| triton-1 | 5/5 | 2.0 | 2.0 | 2.1 | 2.1 | +3.4% | +1.7% | 40 | 41 | 41 | 41 |" in section
    assert "| gateway | 1/2 | 1.0 | – | 1.0 | – | – | – | 9 | 9 | – | – |" in section  # restarted: not compared
    assert "![soak-resources](soak-resources.png)" in section
    assert "<img src=\"soak-resources.png\"" in (tmp_path / "soak.html").read_text()
    height, width, _ = matplotlib.image.imread(tmp_path / "soak-resources.png").shape
    assert (width, height) == (1000, 500)
    goal = next(g for g in results()["goals"] if g["goal"] == "no descriptor growth")
    assert goal["met"] and goal["detail"] == ("triton-1: start 40, end 41; highest level in the first half 41, level "
                                              "over the last tenth 41 (levels: medians over a minute, or a tenth of "
                                              "a shorter run)")
