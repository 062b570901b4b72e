"""Prometheus `/metrics` for a running station, read from the pipeline's tally at scrape time.

Collecting at scrape time keeps the hot path free of metric updates: the threads only record into
the tally they keep anyway, whose timing histograms are read in constant time. The server binds to
localhost unless configured otherwise.
"""

from __future__ import annotations

from typing import Iterator

from prometheus_client import CollectorRegistry, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from inspection.errors import ConfigError
from station.timing_histogram import TimingHistogram

LATENCY_BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000)


class PipelineCollector:
    def __init__(self, pipeline) -> None:
        self._pipeline = pipeline

    def collect(self) -> Iterator[Metric]:
        tally = self._pipeline.tally
        frames = CounterMetricFamily("inspection_frames", "Items inspected (sequence numbers issued)")
        frames.add_metric([], tally.frames)
        yield frames
        verdicts = CounterMetricFamily("inspection_verdicts", "Final outcome per item", labels=["verdict"])
        for verdict, count in tally.verdicts.items():
            verdicts.add_metric([verdict], count)
        yield verdicts
        for name, value, text in (
            ("inspection_late", tally.late, "Items whose decision came after their deadline"),
            ("inspection_overruns", tally.overruns, "Items faulted because the inference queue was full"),
            ("inspection_corrupt_frames", tally.corrupt_frames, "Frames that could not be used"),
            ("inspection_alarms", tally.alarms_total, "Alarms raised (line stop)"),
        ):
            family = CounterMetricFamily(name, text)
            family.add_metric([], value)
            yield family
        yield _histogram("inspection_latency_ms", "Capture to decision, ms", tally.latencies_ms)
        for stage in ("prepare", "infer_per_item"):
            yield _histogram(f"inspection_stage_{stage}_ms", f"Time in stage {stage}, ms", tally.stage_ms[stage])
        yield _histogram("inspection_gate_signal_lateness_ms", "Gate signal after the item's deadline (items decided in time), ms",
                         tally.gate_lateness_ms)
        queues = GaugeMetricFamily("inspection_queue_depth", "Items waiting per queue", labels=["queue"])
        for queue_name, depth in self._pipeline.queue_depths().items():
            queues.add_metric([queue_name], depth)
        yield queues


def _histogram(name: str, text: str, timings: TimingHistogram) -> HistogramMetricFamily:
    cumulative = timings.cumulative_counts(LATENCY_BUCKETS_MS)
    buckets = [(str(edge), float(count)) for edge, count in zip(LATENCY_BUCKETS_MS, cumulative)]
    buckets.append(("+Inf", float(timings.count)))
    family = HistogramMetricFamily(name, text)
    family.add_metric([], buckets, sum_value=float(timings.total))
    return family


def serve_metrics(pipeline, host: str, port: int):
    """Start the /metrics HTTP server in a daemon thread; returns the server (call shutdown())."""
    registry = CollectorRegistry()
    registry.register(PipelineCollector(pipeline))
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        raise ConfigError(f"metrics.port {port} on {host} cannot be opened ({exc.strerror or exc}): another program "
                          "holds it, or the address is not this machine's. Set metrics.port to a free port, or metrics.host to "
                          "an address of this machine (127.0.0.1).") from None
    return server
