"""`make bench` works end to end on tiny data. Timings are never asserted: they belong to bench/."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_runs_on_tiny_data_and_writes_its_report(tmp_path: Path) -> None:
    out = tmp_path / "results"
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--customers", "30", "--repeat", "1", "--skip-spark",
         "--out", str(out), "--work", str(tmp_path / "work")],
        cwd=REPO, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]

    result = json.loads((out / "latest.json").read_text())
    assert {"machine", "config", "data", "incremental_batch", "summary", "runs", "ratios", "targets", "rows"} <= result.keys()
    assert {"cpu_model", "cores", "memory_gb", "python", "duckdb", "spark", "date"} <= result["machine"].keys()
    assert set(result["summary"]) == {
        "floor",
        "stedi",
        "incremental-base",
        "incremental",
        "noop",
        "readings-base",
        "incremental-readings",
        "floor-export",
        "stedi-export",
        "delivery-base",
        "delivery",
        "erasure",
        "erasure-held",
        "after-erasure",
    }  # no Spark
    for name, summary in result["summary"].items():
        assert summary["runs"] == 1 and summary["ok_runs"] == 1, (name, summary["errors"])
        run = result["runs"][name][0]
        assert {"wall_s", "peak_mb", "returncode", "ok"} <= run.keys()
    assert set(result["ratios"]) == {
        "stedi_over_floor",
        "peer_over_stedi",
        "spark_stedi_over_peer",
        "incremental_over_full",
        "incremental_readings_over_full",
        "stedi_over_floor_export",
        "peer_over_stedi_export",
        "delivery_over_full_export",
        "erasure_over_full_export",
        "erasure_held_over_full_export",
    }
    assert result["ratios"]["peer_over_stedi"] is None
    assert all({"target", "value", "met", "applies"} <= t.keys() for t in result["targets"])
    assert result["runs"]["incremental"][0]["new_files"] == result["incremental_batch"]["files"]
    assert result["runs"]["noop"][0]["new_files"] == 0
    assert result["runs"]["delivery"][0]["new_files"] == 3  # one file per feed
    assert result["runs"]["stedi"][0]["landing_s"] > 0 and result["runs"]["stedi"][0]["landing_cpu_percent"] > 0
    assert result["delivery"]["customer"] > 200  # the new customers, and the few this tiny lake has to revoke or grant
    assert 0 < result["runs"]["incremental-readings"][0]["new_files"] < result["incremental_batch"]["files"]
    assert set(result["rows"]) == {"floor", "stedi", "floor-export", "stedi-export"}
    assert result["rows"]["stedi-export"]["customer_landing"] == result["export_data"]["records"]["customer"]
    assert sum(result["export_data"]["files"].values()) == 3  # one file per feed
    assert result["rows"]["stedi"]["machine_learning_curated"] > 0
    assert "## SPEC §10 targets" in (out / "latest.md").read_text()
    assert not (tmp_path / "work" / "rep1").exists()  # scratch outputs and lakes are cleaned up
