"""What a load run reports, read back from Prometheus with PromQL.

Totals are exact counter differences between the run's start and end (no rate() extrapolation), so they can be
compared request for request: Locust's count against Triton's. Locust's exporter stops with Locust, so its
series are read with last_over_time() (an instant query after the process ended would see them stale).
Percentiles over a window use increase() of histogram buckets, which scales all buckets alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from loadtest.metrics.prometheus import PromClient

QUANTILES = (0.5, 0.9, 0.95, 0.99)
TRITON_DURATIONS = ("queue", "compute_input", "compute_infer", "compute_output", "request")
LOCUST_REQUESTS = "tritonzoo_locust_requests_total"
LOCUST_BUCKETS = "tritonzoo_locust_request_seconds_bucket"
GATEWAY_REQUESTS = "tritonzoo_gateway_requests_total"
GATEWAY_BUCKETS = "tritonzoo_gateway_request_seconds_bucket"


@dataclass(frozen=True)
class Window:
    start: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start

    @property
    def range(self) -> str:
        """A PromQL range covering the window (whole seconds, rounded up)."""
        return f"{math.ceil(self.seconds)}s"


def clean(value: float | None) -> float | None:
    """NaN (Triton's summaries before any request, 0/0) becomes None: JSON has no NaN."""
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def counter_delta(client: PromClient, selector: str, window: Window, by: tuple[str, ...]) -> dict[str, float]:
    """Exact increase of a counter over the window, per `by` labels joined with '/': value at end minus at start.

    A series absent at the start (created by the first request) counts from zero.
    """
    expr = f"sum by ({', '.join(by)}) ({selector})"

    def values(at: float) -> dict[str, float]:
        return {"/".join(r["metric"].get(b, "") for b in by): float(r["value"][1]) for r in client.query(expr, at)}

    end, start = values(window.end), values(window.start)
    return {key: value - start.get(key, 0.0) for key, value in end.items()}


def triton_delta(client: PromClient, metric: str, window: Window) -> dict[str, float]:
    """Per-model increase of a Triton counter over the window."""
    return counter_delta(client, f'{metric}{{job="triton"}}', window, ("model",))


def triton_figures(client: PromClient, window: Window) -> dict[str, dict]:
    """Per model: requests, failures, inferences, executions, throughput, batch size, queue vs compute, summaries."""
    success = triton_delta(client, "nv_inference_request_success", window)
    failure = triton_delta(client, "nv_inference_request_failure", window)
    count = triton_delta(client, "nv_inference_count", window)
    execs = triton_delta(client, "nv_inference_exec_count", window)
    durations = {d: triton_delta(client, f"nv_inference_{d}_duration_us", window) for d in TRITON_DURATIONS}
    figures = {}
    for model in success:
        n = success[model]
        figures[model] = {
            "requests": n, "failures": failure.get(model, 0.0), "inferences": count.get(model, 0.0),
            "executions": execs.get(model, 0.0), "rps": n / window.seconds,
            "inferences_per_s": count.get(model, 0.0) / window.seconds,
            "avg_batch_size": clean(count.get(model, 0.0) / execs[model]) if execs.get(model) else None,
            "mean_us": {d: (durations[d].get(model, 0.0) / n if n else None) for d in TRITON_DURATIONS},
            "summary_us": triton_summaries(client, model, window.end),
        }
    return figures


def triton_summaries(client: PromClient, model: str, at: float) -> dict[str, dict[str, float | None]]:
    """Triton's own latency quantiles (--metrics-config summary_latencies=true), over its recent requests."""
    out: dict[str, dict[str, float | None]] = {}
    for part in ("request", "queue", "compute_infer"):
        values = client.by_label(f'nv_inference_{part}_summary_us{{job="triton",model="{model}"}}', "quantile", at)
        out[part] = {q: clean(v) for q, v in sorted(values.items())}
    return out


def final_values(selector: str, window: Window, since: float | None = None) -> str:
    """PromQL for an exporter's final values (it may be gone by the window's end), less its values at `since` when
    given (a warm-up left out of the figures); a series created after `since` counts from zero."""
    last = f"last_over_time({selector}[{window.range}])"
    return last if since is None else f"(({last}) - ({selector} @ {since:.3f})) or ({last})"


def sample_time(client: PromClient, selector: str, at: float) -> float:
    """When the last sample of `selector` at or before `at` was scraped: a cut there counts exactly what came after
    it (a cut between scrapes would count up to one interval more than its window)."""
    rows = client.query(f"max(timestamp({selector}))", at)
    return float(rows[0]["value"][1]) if rows else at


def locust_totals(client: PromClient, window: Window, since: float | None = None) -> dict[str, dict[str, float]]:
    """Per request name: requests by outcome, from the exporter's final values (failures are never dropped)."""
    expr = f"sum by (name, outcome) ({final_values(LOCUST_REQUESTS, window, since)})"
    totals: dict[str, dict[str, float]] = {}
    for row in client.query(expr, window.end):
        labels = row["metric"]
        totals.setdefault(labels["name"], {"success": 0.0, "failure": 0.0})[labels["outcome"]] = float(row["value"][1])
    return totals


def histogram_quantiles(client: PromClient, buckets: str, window: Window, matcher: str = "",
                        by: tuple[str, ...] = (), final: bool = False,
                        since: float | None = None) -> dict[str, dict[str, float | None]]:
    """Quantiles (seconds) of a histogram over the window, keyed by the `by` labels joined with '/' ('all' if none).

    `final`: the cumulative values of an exporter that has finished (Locust's), since `since` if given, rather than
    the window's increase.
    """
    selector = f"{buckets}{{{matcher}}}"
    inner = final_values(selector, window, since) if final else f"increase({selector}[{window.range}])"
    group = ", ".join((*by, "le"))
    out: dict[str, dict[str, float | None]] = {}
    for q in QUANTILES:
        for row in client.query(f"histogram_quantile({q}, sum by ({group}) ({inner}))", window.end):
            key = "/".join(row["metric"].get(label, "") for label in by) if by else "all"
            out.setdefault(key, {})[str(q)] = clean(float(row["value"][1]))
    return out


def gateway_figures(client: PromClient, window: Window) -> dict[str, dict]:
    """Per experiment/model ('/model' outside experiments): requests by status code, latency quantiles (s)."""
    counts = counter_delta(client, f'{GATEWAY_REQUESTS}{{job="gateway"}}', window, ("experiment", "model", "code"))
    figures: dict[str, dict] = {}
    for key, n in counts.items():
        arm, code = key.rsplit("/", 1)
        figures.setdefault(arm, {"codes": {}})["codes"][code] = round(n)
    latencies = histogram_quantiles(client, GATEWAY_BUCKETS, window, by=("experiment", "model"))
    for key, fig in figures.items():
        fig["latency_s"] = latencies.get(key, {})
    return figures


def series_queries(rate: str) -> dict[str, str]:
    """The time series a run reports (and the Grafana dashboard shows), with `rate` as the rate() window."""

    def triton(metric: str) -> str:
        return f'sum by (model) (rate({metric}{{job="triton"}}[{rate}]))'

    compute = " + ".join(triton(f"nv_inference_{d}_duration_us") for d in ("compute_input", "compute_infer",
                                                                            "compute_output"))
    return {
        "triton_inferences_per_s": triton("nv_inference_count"),
        "triton_queue_us_per_request": f'{triton("nv_inference_queue_duration_us")} / '
                                       f'{triton("nv_inference_request_success")}',
        "triton_compute_us_per_request": f'({compute}) / {triton("nv_inference_request_success")}',
        "triton_avg_batch_size": f'{triton("nv_inference_count")} / {triton("nv_inference_exec_count")}',
        "locust_requests_per_s": f"sum by (outcome) (rate({LOCUST_REQUESTS}[{rate}]))",
        "locust_p95_s": f"histogram_quantile(0.95, sum by (le) (rate({LOCUST_BUCKETS}[{rate}])))",
    }


def time_series(client: PromClient, window: Window, step_s: float) -> dict[str, list[dict]]:
    """Throughput, latency and queueing over the run, for the report's charts."""
    rate = f"{max(4 * step_s, 2):g}s"  # several scrapes per rate window
    out = {}
    for name, expr in series_queries(rate).items():
        out[name] = [{"labels": s["metric"], "points": [[float(t), clean(float(v))] for t, v in s["values"]]}
                     for s in client.query_range(expr, window.start, window.end, step_s)]
    return out


def histogram_buckets(client: PromClient, buckets: str, window: Window, by: tuple[str, ...] = ("name",),
                      since: float | None = None) -> dict:
    """An exporter's final histogram (since `since` if given) per `by` labels: cumulative counts per bucket bound
    ('+Inf' included), exact sum and count, all outcomes. Kept in the results so a report can compute confidence
    intervals without Prometheus."""
    base = buckets.removesuffix("_bucket")
    group = ", ".join(by)

    def final(metric: str, extra: str = "") -> list[dict]:
        return client.query(f"sum by ({group}{extra}) ({final_values(metric, window, since)})", window.end)

    def key(row: dict) -> str:
        return "/".join(row["metric"].get(label, "") for label in by)

    out: dict[str, dict] = {}
    for row in final(buckets, ", le"):
        out.setdefault(key(row), {"buckets": []})["buckets"].append([row["metric"]["le"], float(row["value"][1])])
    for part in ("sum", "count"):
        for row in final(f"{base}_{part}"):
            out.setdefault(key(row), {"buckets": []})[part] = float(row["value"][1])
    for hist in out.values():
        hist["buckets"].sort(key=lambda b: float(b[0]))
    return out
