"""The repeated first-sync runs summed up (bench/repeat.py): pure functions, no simulator."""

from __future__ import annotations

from typing import Any

import pytest

from bench import repeat


def line(case: str, seconds: float, baseline: float, **extra: Any) -> dict[str, Any]:
    return {"benchmark": f"contacts-first-sync.{case}", "seconds": seconds,
            "baseline_seconds": baseline,
            "ratio_to_baseline": round(seconds / baseline, 2), "status": "success",
            "errors": 0, "ok": True, **extra}


def test_interleaved_gathers_each_case_in_the_order_the_repeats_ran():
    repeats = [[line("export", 1.2, 1.0), line("import", 3.0, 2.0)],
               [line("export", 1.4, 1.0), line("import", 2.6, 2.0)],
               [line("export", 1.1, 1.0), line("import", 2.2, 2.0)]]
    runs = repeat.interleaved(repeats)
    assert list(runs) == ["contacts-first-sync.export", "contacts-first-sync.import"]
    assert [r["seconds"] for r in runs["contacts-first-sync.export"]] == [1.2, 1.4, 1.1]
    assert [r["seconds"] for r in runs["contacts-first-sync.import"]] == [3.0, 2.6, 2.2]


def test_interleaved_refuses_a_repeat_that_lacks_a_case():
    repeats = [[line("export", 1.2, 1.0), line("import", 3.0, 2.0)],
               [line("export", 1.4, 1.0)]]
    with pytest.raises(ValueError, match="import: 1 runs in 2 repeats"):
        repeat.interleaved(repeats)


def test_interleaved_refuses_a_line_without_its_baseline():
    alone = line("export", 1.2, 1.0)
    del alone["baseline_seconds"]
    with pytest.raises(ValueError, match="without a product and a baseline"):
        repeat.interleaved([[alone]])


def test_spread_is_the_median_with_the_smallest_and_largest_ratio():
    assert repeat.spread([1.4, 1.1, 1.3]) == {"ratio_median": 1.3, "ratio_min": 1.1,
                                              "ratio_max": 1.4}
    assert repeat.spread([1.4, 1.1, 1.3, 1.2]) == {"ratio_median": 1.25, "ratio_min": 1.1,
                                                   "ratio_max": 1.4}
    with pytest.raises(ValueError):
        repeat.spread([])


def test_summary_is_the_median_run_with_every_runs_seconds():
    runs = [line("export", 1.5, 1.0, ews_requests=70), line("export", 2.4, 2.0, ews_requests=71),
            line("export", 1.1, 1.0, ews_requests=72)]
    summary = repeat.summary(runs)
    # The median ratio is 1.2 (the second run's): its line, with the others' figures beside.
    assert summary["seconds"] == 2.4 and summary["ews_requests"] == 71
    assert summary["ratio_to_baseline"] == summary["ratio_median"] == 1.2
    assert (summary["ratio_min"], summary["ratio_max"]) == (1.1, 1.5)
    assert summary["ratios"] == [1.5, 1.2, 1.1]
    assert summary["repeats"] == 3
    assert "no baseline writes the CRM" in summary["ratio_covers"]
    assert summary["runs"] == [{"seconds": 1.5, "baseline_seconds": 1.0, "ratio": 1.5},
                               {"seconds": 2.4, "baseline_seconds": 2.0, "ratio": 1.2},
                               {"seconds": 1.1, "baseline_seconds": 1.0, "ratio": 1.1}]


def test_summary_checks_the_median_of_an_even_count_not_one_run():
    summary = repeat.summary([line("export", 1.0, 1.0), line("export", 2.0, 1.0)])
    assert summary["ratio_to_baseline"] == 1.5
    assert summary["seconds"] == 1.0   # the lower of the middle two runs


def test_one_failed_run_fails_the_summary_whichever_run_is_the_median():
    runs = [line("export", 1.2, 1.0), line("export", 1.3, 1.0),
            line("export", 5.0, 1.0, status="failed", errors=3, ok=False)]
    summary = repeat.summary(runs)
    assert summary["seconds"] == 1.3
    assert (summary["status"], summary["errors"], summary["ok"]) == ("failed", 3, False)


def test_a_baseline_measured_at_zero_seconds_leaves_no_ratio():
    zero = {**line("export", 1.0, 1.0), "baseline_seconds": 0.0, "ratio_to_baseline": None}
    summary = repeat.summary([zero, line("export", 1.0, 1.0)])
    assert summary["ratio_to_baseline"] is None and summary["ratio_median"] is None
