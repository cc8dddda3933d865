"""Repeated first-sync runs summed up: a case's product and baseline runs in the order they ran,
the median ratio and its spread.

Each repeat runs every case once, and a case measures its baseline and then the product right
after it, on the same simulator and data: pairs adjacent in time, repeats one after another
(baseline, product, baseline, product...). One run of a few seconds on a small shared machine
varies by about ±0.3 in its ratio; a pair measured together shares the machine's mood, and the
median of the pairs' ratios is the figure that stays put. Pure functions: bench/run.py runs the
children and prints what these return.
"""

from __future__ import annotations

import statistics
from typing import Any

# What `ratio_to_baseline` compares, said in every line (bench/README.md has the details).
RATIO_COVERS = ("the product's whole run (planning, CRM writes, links, history, its Exchange "
                "requests) against exchangelib alone doing the Exchange work the case needs for "
                "the same result; no baseline writes the CRM")


def interleaved(repeats: list[list[dict[str, Any]]]) -> dict[str, list[dict[str, Any]]]:
    """Every repeat's result lines (one per case, in the order the repeats ran) gathered per
    case, in the same order: each a product run and the baseline run measured just before it.
    A repeat that lacks a case, or a line without both timings, is an error: a median over
    fewer pairs than asked for would be passed off as the real one."""
    by_case: dict[str, list[dict[str, Any]]] = {}
    for repeat in repeats:
        for line in repeat:
            if "seconds" not in line or "baseline_seconds" not in line:
                raise ValueError(f"{line.get('benchmark')}: a line without a product and a "
                                 "baseline run")
            by_case.setdefault(line["benchmark"], []).append(line)
    for name, lines in by_case.items():
        if len(lines) != len(repeats):
            raise ValueError(f"{name}: {len(lines)} runs in {len(repeats)} repeats")
    return by_case


def spread(ratios: list[float]) -> dict[str, float]:
    """The median of the ratios (the mean of the middle two for an even count) and their
    smallest and largest."""
    if not ratios:
        raise ValueError("no ratios")
    return {"ratio_median": round(statistics.median(ratios), 2),
            "ratio_min": min(ratios), "ratio_max": max(ratios)}


def summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """One case's line from its runs (in the order they ran): the line of the run whose ratio
    is the median (the lower of the middle two for an even count), `ratio_to_baseline` set to
    the median ratio, which the targets are checked on, and every run's seconds. A run that
    went wrong (status, errors, counts) fails the line, whichever run is the median."""
    ratios = [line["ratio_to_baseline"] for line in lines]
    if any(ratio is None for ratio in ratios):
        # A baseline measured at 0 s: no ratio to take the median of.
        median_line, stats = lines[0], {"ratio_median": None, "ratio_min": None,
                                        "ratio_max": None}
    else:
        ordered = sorted(lines, key=lambda line: line["ratio_to_baseline"])
        median_line, stats = ordered[(len(ordered) - 1) // 2], spread(ratios)
    failed = next((line for line in lines if line["status"] != "success"), None)
    return {
        **median_line,
        "ratio_to_baseline": stats["ratio_median"],
        **stats,
        "ratio_covers": RATIO_COVERS,
        "ratios": ratios,
        "repeats": len(lines),
        "runs": [{"seconds": line["seconds"], "baseline_seconds": line["baseline_seconds"],
                  "ratio": line["ratio_to_baseline"]} for line in lines],
        "status": failed["status"] if failed else median_line["status"],
        "errors": max(line["errors"] for line in lines),
        "ok": all(line.get("ok", True) for line in lines),
    }
