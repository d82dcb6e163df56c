"""The peers table of scripts/bench --peers: every server on the PATCH workload side by side.

Medians of the interleaved rounds; each ratio is taskgate's throughput over the other
server's measured in the same round, so a machine that grows busier between rounds moves
both sides alike. The issue 19 targets are printed beside the ratios they are about.
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from bench_peers import PEERS, Peer

PATCH = "sailpoint_patch"
#: the issue's acceptance: taskgate's PATCH throughput at least this many times the peer's
TARGETS = {"minimal": 1.5, "fastapi": 10.0, "datasette": 10.0}


def _stats(results: list[tuple[dict[str, Any], float]], base: list[dict[str, Any]]) -> dict[str, Any]:
    """Medians over rounds of one server's (result, peak RSS), and of taskgate's rate over its
    own in the same round (*base*, taskgate's result of each round, or empty). A round in
    which the server answered nothing within the run (a peer whose requests all wait on a
    lock) counts as 0 req/s and an infinite ratio; its latency and CPU are not counted."""
    answered = [r for r, _ in results if r["requests"] > 0] or [r for r, _ in results]
    out: dict[str, Any] = {
        "rounds": len(results), "silent_rounds": sum(1 for r, _ in results if r["requests"] == 0),
        "rps": statistics.median(r["rps"] for r, _ in results),
        "p50_ms": statistics.median(r["latency_us"]["p50"] / 1000 for r in answered),
        "p99_ms": statistics.median(r["latency_us"]["p99"] / 1000 for r in answered),
        "cpu_us_per_request": statistics.median(r["server_cpu_us_per_request"] for r in answered),
        "peak_rss_mib": max(rss for _, rss in results),
        "errors": sum(sum(r["errors"].values()) for r, _ in results)}
    if base:
        out["taskgate_over_it"] = statistics.median(t["rps"] / r["rps"] if r["rps"] > 0 else math.inf
                                                    for (r, _), t in zip(results, base, strict=True))
    return out


def summarize(runs: list[dict[str, Any]], n: int, setting: str, peers: list[Peer]) -> list[dict[str, Any]]:
    """One row per server at *n* records: the ceiling, taskgate at *setting* (``FULL``,
    ``FULL/2w``, …) and each peer, with taskgate ÷ it from the rounds that ran both."""
    rounds = [run for run in runs if run["n"] == n and PATCH in run["taskgate"].get(setting, {}).get("results", {})]
    taskgate = [(run["taskgate"][setting]["results"][PATCH], run["taskgate"][setting]["peak_rss_mib"])
                for run in rounds]
    if not taskgate:
        return []
    base = [t for t, _ in taskgate]
    rows = []
    ceiling = [(run["ceiling"]["results"][PATCH], run["ceiling"]["peak_rss_mib"]) for run in rounds]
    rows.append({"server": "ceiling", "label": "ceiling: bare aiohttp, parses the body, answers a constant",
                 **_stats(ceiling, base)})
    rows.append({"server": f"taskgate {setting}", "label": f"taskgate, synchronous={setting} (SailPoint PATCH)",
                 **_stats(taskgate, base)})
    for peer in peers:
        mine = [(run["peers"][peer.name]["results"][f"peer_{peer.name}"], run["peers"][peer.name]["peak_rss_mib"])
                for run in rounds if peer.name in run.get("peers", {})]
        if mine:
            paired = [run["taskgate"][setting]["results"][PATCH] for run in rounds if peer.name in run.get("peers", {})]
            rows.append({"server": peer.name, "label": peer.label, **_stats(mine, paired)})
    return rows


def print_table(rows: list[dict[str, Any]], n: int) -> None:
    if not rows:
        return
    print(f"\npeers on the PATCH workload, {n} records (medians of the rounds; taskgate ÷ it = taskgate's req/s "
          "over the server's in the same round)")
    width = max(len(r["server"]) for r in rows)
    print(f"{'server':{width}} {'req/s':>8} {'p50 ms':>7} {'p99 ms':>7} {'CPU us/req':>10} {'peak RSS MiB':>12} "
          f"{'taskgate ÷ it':>13}  what")
    for r in rows:
        print(f"{r['server']:{width}} {r['rps']:8.0f} {r['p50_ms']:7.1f} {r['p99_ms']:7.1f} "
              f"{r['cpu_us_per_request']:10.0f} {r['peak_rss_mib']:12.0f} {r['taskgate_over_it']:13.2f}  {r['label']}"
              + (f"  ({r['errors']} errors)" if r["errors"] else "")
              + (f"  ({r['silent_rounds']} of {r['rounds']} rounds answered nothing)" if r["silent_rounds"] else ""))
    by = {r["server"]: r for r in rows}
    for name, target in TARGETS.items():
        if name in by:
            ratio = by[name]["taskgate_over_it"]
            verdict = "met" if ratio >= target else "NOT met"
            print(f"taskgate ÷ {name}: {ratio:.2f} (issue 19 asks >= {target:g}: {verdict})")


def markdown(rows: list[dict[str, Any]]) -> str:
    """The table as docs/performance.md shows it."""
    lines = ["| server | PATCH req/s | p50 / p99 ms | server CPU µs per request | peak RSS | taskgate ÷ it |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        silent = f" ({r['silent_rounds']} of {r['rounds']} rounds answered nothing)" if r["silent_rounds"] else ""
        lines.append(f"| {r['label']} | {r['rps']:,.0f} | {r['p50_ms']:.1f} / {r['p99_ms']:.1f} | "
                     f"{r['cpu_us_per_request']:,.0f} | {r['peak_rss_mib']:.0f} MiB | "
                     f"{r['taskgate_over_it']:.2f}{silent} |")
    return "\n".join(lines)


__all__ = ["PEERS", "TARGETS", "markdown", "print_table", "summarize"]
