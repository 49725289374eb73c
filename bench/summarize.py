#!/usr/bin/env python3
"""Medians of bench/run.sh results, one Markdown table per workload.

    python3 bench/summarize.py results.jsonl
"""

import json
import statistics
import sys
from collections import OrderedDict

# Figures shown per workload, in order.
COLUMNS = {
    "group": ["deliveries_per_s", "latency_p50_ms", "latency_p99_ms", "latency_max_ms",
              "lost", "disconnected", "server_errors", "server_cpu_us_per_delivery",
              "bench_cpu_us_per_delivery", "server_peak_rss_mib"],
    "direct": ["round_trips_per_s", "rtt_p50_ms", "rtt_p99_ms", "rtt_max_ms", "lost",
               "server_errors", "server_cpu_us_per_forward", "bench_cpu_us_per_forward",
               "server_context_switches_per_forward", "server_peak_rss_mib"],
    "idle": ["connected", "answering", "lost", "connects_per_s", "server_rss_per_connection_kib",
             "server_rss_held_mib", "server_cpu_us_per_connect"],
    "stall": ["lost", "disconnected_readers", "stalled_received", "stalled_outcome",
              "latency_p99_ms", "server_peak_rss_mib", "server_cpu_us_per_delivery"],
}


def median(values):
    numbers = [v for v in values if isinstance(v, (int, float)) and not isinstance(v, bool)]
    if numbers and len(numbers) == len(values):
        m = statistics.median(numbers)
        return round(m, 3) if isinstance(m, float) else m
    # Text (or a mix): show each run's value.
    distinct = list(OrderedDict.fromkeys(str(v) for v in values))
    return " / ".join(distinct)


def main(path):
    cases = OrderedDict()
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line.startswith("{"):
                continue
            row = json.loads(line)
            cases.setdefault(row["case"], []).append(row)
    by_workload = OrderedDict()
    for name, rows in cases.items():
        reports = [r["report"] for r in rows if r["report"]]
        if not reports:
            print(f"{name}: every run failed", file=sys.stderr)
            continue
        by_workload.setdefault(reports[0]["workload"], []).append((name, rows, reports))
    for workload, entries in by_workload.items():
        cols = COLUMNS[workload]
        print(f"\n### {workload}\n")
        print("| case | runs | load | " + " | ".join(cols) + " |")
        print("|---|---|---|" + "---|" * len(cols))
        for name, rows, reports in entries:
            cells = [str(median([r["results"].get(c) for r in reports])) for c in cols]
            loads = [r["load"] for r in rows if "load" in r]
            load = f"{min(loads)}–{max(loads)}" if loads else "-"
            print(f"| {name} | {len(reports)} | {load} | " + " | ".join(cells) + " |")
        print_searches(entries)
        print_by_thread(entries)


SEARCH_COLUMNS = ["searches", "search_p50_ms", "search_p99_ms", "search_max_ms"]


def print_searches(entries):
    """The searches of `group --search` made while the messages went, medians, if any."""
    rows = [(name, reports) for name, _rows, reports in entries
            if any("searches" in r["results"] for r in reports)]
    if not rows:
        return
    print("\nSearches during the traffic (medians):\n")
    print("| case | " + " | ".join(SEARCH_COLUMNS) + " |")
    print("|---|" + "---|" * len(SEARCH_COLUMNS))
    for name, reports in rows:
        cells = [str(median([r["results"].get(c) for r in reports])) for c in SEARCH_COLUMNS]
        print(f"| {name} | " + " | ".join(cells) + " |")


def print_by_thread(entries):
    """The server's CPU by thread (chat-bench's `…_by_thread` figures), medians, if reported."""
    rows = []
    for name, _rows, reports in entries:
        per_run = [next((v for k, v in r["results"].items() if k.endswith("_by_thread")
                         and isinstance(v, dict)), None) for r in reports]
        per_run = [p for p in per_run if p]
        if per_run:
            rows.append((name, per_run))
    if not rows:
        return
    threads = list(OrderedDict.fromkeys(t for _, runs in rows for run in runs for t in run))
    print("\nServer CPU by thread, µs per delivery or forward (medians):\n")
    print("| case | " + " | ".join(threads) + " |")
    print("|---|" + "---|" * len(threads))
    for name, runs in rows:
        cells = [str(median([run.get(t, 0) for run in runs])) for t in threads]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main(sys.argv[1])
