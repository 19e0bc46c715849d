"""The asynchronous-request benchmark's report: tables and lines from its runs.

Each run is the dict :func:`async_batch.run_batch` returns, plus ``kind`` ("warm" or
"cold"), ``label`` and ``repeat``. Used by bench/async_throughput.py.
"""

from __future__ import annotations

import statistics
from pathlib import Path
from typing import Any

from rich.table import Table

__all__ = ["HEADERS", "emit", "markdown", "run_line", "summary_rows", "summary_table"]


def run_line(run: dict[str, Any]) -> str:
    """One run on one line, for the progress log."""
    text = (
        f"submit {run['submit_rps']:>6,.0f}/s  completed {run['completed_rps']:>6,.0f}/s "
        f"({run['completion_seconds']:.2f} s)  p50 {run['latency_p50_ms']:,.0f} ms  "
        f"p99 {run['latency_p99_ms']:,.0f} ms  instances {run['instances_at_start']}->"
        f"{run['instances_peak']}  failed {run['failed']}  redelivered {run['redelivered']}  "
        f"others {run['cpu_cores']['others']:.2f} cores"
    )
    if run["kind"] == "cold":
        text += f"  first completed {run['first_completed_ms']:,.0f} ms"
    return text


def _scenarios(runs: list[dict[str, Any]]) -> list[tuple[str, list[dict[str, Any]]]]:
    keys: dict[str, list[dict[str, Any]]] = {}
    for run in runs:
        keys.setdefault(f"{run['kind']}, {run['label']}", []).append(run)
    return list(keys.items())


def _med(runs: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def _range(runs: list[dict[str, Any]], key: str) -> str:
    values = [r[key] for r in runs]
    return f"{min(values):,.0f}-{max(values):,.0f}"


HEADERS = [
    "run", "requests", "submit req/s (min-max)", "completed req/s (min-max)", "p50 ms",
    "p99 ms", "queued p50 ms", "running p50 ms", "instances", "first done ms", "failed",
    "redelivered",
]  # fmt: skip


def summary_rows(runs: list[dict[str, Any]]) -> list[list[str]]:
    """One row per scenario: medians over the repeats, with the min-max of the rates."""
    rows: list[list[str]] = []
    for name, group in _scenarios(runs):
        cold = group[0]["kind"] == "cold"
        rows.append(
            [
                name,
                f"{group[0]['requests']:,}",
                f"{_med(group, 'submit_rps'):,.0f} ({_range(group, 'submit_rps')})",
                f"{_med(group, 'completed_rps'):,.0f} ({_range(group, 'completed_rps')})",
                f"{_med(group, 'latency_p50_ms'):,.0f}",
                f"{_med(group, 'latency_p99_ms'):,.0f}",
                f"{_med(group, 'queued_p50_ms'):,.0f}",
                f"{_med(group, 'running_p50_ms'):,.1f}",
                ", ".join(
                    sorted({f"{r['instances_at_start']}->{r['instances_peak']}" for r in group})
                ),
                f"{_med(group, 'first_completed_ms'):,.0f}" if cold else "-",
                str(sum(r["failed"] + r["expired"] for r in group)),
                str(sum(r["redelivered"] for r in group)),
            ]
        )
    return rows


def markdown(runs: list[dict[str, Any]]) -> str:
    """The summary table, then one row per run (bench/results/async_throughput.md)."""
    lines = [
        "| " + " | ".join(HEADERS) + " |",
        "|---|" + "--:|" * 7 + "---|" + "--:|" * 3,
        *("| " + " | ".join(row) + " |" for row in summary_rows(runs)),
        "",
        "| run | repeat | submit req/s | submit p50 / p99 ms | completed req/s | seconds "
        "| p50 / p99 / max ms | CPU ms/req: platform / instances / client "
        "| cores busy: all / others |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for r in runs:
        ms, cores = r["cpu_ms_per_request"], r["cpu_cores"]
        lines.append(
            f"| {r['kind']}, {r['label']} | {r['repeat']} | {r['submit_rps']:,.0f} | "
            f"{r['submit_p50_ms']:,.1f} / {r['submit_p99_ms']:,.0f} | "
            f"{r['completed_rps']:,.0f} | {r['completion_seconds']:.2f} | "
            f"{r['latency_p50_ms']:,.0f} / {r['latency_p99_ms']:,.0f} / "
            f"{r['latency_max_ms']:,.0f} | {ms['platform']:.2f} / {ms['instances']:.2f} / "
            f"{ms['client']:.2f} | {cores['machine']:.2f} / {cores['others']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def summary_table(runs: list[dict[str, Any]]) -> Table:
    """The summary rows (:func:`summary_rows`) as a rich table, for the terminal."""
    out = Table(title="asynchronous requests, end to end: median over repeats")
    for i, header in enumerate(HEADERS):
        out.add_column(header, justify="left" if i == 0 else "right")
    for row in summary_rows(runs):
        out.add_row(*row)
    return out


def emit(where: str, text: str) -> None:
    """Write ``text`` to the file ``where``, or to stdout when it is ``-``."""
    if where == "-":
        print(text)
    else:
        Path(where).write_text(text)
