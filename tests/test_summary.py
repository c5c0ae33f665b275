"""The summary printed after a sweep: every figure it cannot show says why, in a note."""

from __future__ import annotations

import re
from pathlib import Path

from helpers import fake_sweep
from omegaconf import OmegaConf

from depthlab.report_sections import runs_html
from depthlab.results import load_sweep
from depthlab.summary import SweepSummary, format_summary


def run(run_id: str, depth: int, **row) -> dict:
    return {
        "run_id": run_id,
        "depth": depth,
        "probes": "default",
        "final_loss": 1.5,
        "final_accuracy": 0.5,
        "delta_ratio_initial": 1e-3,
        "delta_ratio_final": 2e-3,
        "wall_time_s": 1.0,
        **row,
    }


def test_every_missing_figure_has_a_note_saying_why(tmp_path: Path) -> None:
    nan = float("nan")
    fake_sweep(
        tmp_path,
        [
            run("a", 3),
            run("b", 400, delta_ratio_initial=nan, delta_ratio_final=nan),  # below float64
            run("c", 10, probes="none", delta_ratio_initial=nan, delta_ratio_final=nan),
            run(
                "d",
                30,
                final_loss=nan,
                delta_ratio_final=nan,
                nonfinite_step=7.0,
                nonfinite_layer=2.0,
                status="diverged",
                diverged_step=7,
            ),
            run(
                "e",
                50,
                final_loss=nan,
                final_accuracy=nan,
                delta_ratio_initial=nan,
                delta_ratio_final=nan,
                status="failed",
            ),
        ],
    )
    text = format_summary(load_sweep(tmp_path, metrics=False))
    lines = text.splitlines()
    by_depth = {line.split()[0]: line for line in lines if line.split()[0].isdigit()}
    assert "nan" not in by_depth["3"]
    mark = by_depth["400"].split("nan [")[1].split("]")[0]
    assert f"[{mark}] a delta is below even float64's range" in text
    assert "no probes ran (probes=none)" in text
    assert "a probed pass was not finite (step 7, layer 2)" in text
    assert "the run failed (its error is in its run.parquet)" in text
    assert "diverged@7" in by_depth["30"] and "the run diverged" in text
    notes = [re.match(r"\[(\d+)\] ", line)[1] for line in lines if line.startswith("[")]
    marks = {m for line in by_depth.values() for m in re.findall(r"nan \[(\d+)\]", line)}
    assert sorted(notes) == sorted(marks) and len(set(notes)) == len(notes) == 5
    assert all(len(line) <= 100 for line in lines)


def test_the_report_page_carries_the_same_notes(tmp_path: Path) -> None:
    nan = float("nan")
    fake_sweep(tmp_path, [run("a", 3), run("b", 400, delta_ratio_initial=nan)])
    page = runs_html(load_sweep(tmp_path, metrics=False))
    assert "nan [1]" in page and "[1] a delta is below even float64&#x27;s range" in page


def test_a_single_run_of_replicas_prints_one_line_per_replica(tmp_path: Path, capsys) -> None:
    fake_sweep(
        tmp_path, [run("a", 3, seed=0, folder="seed=0"), run("b", 3, seed=1, folder="seed=1")]
    )
    SweepSummary().on_run_end(OmegaConf.create({"hydra": {"run": {"dir": str(tmp_path)}}}))
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[-3:-1]] == ["0", "1"]  # seeds, then the folder
    assert lines[-1] == f"records: {tmp_path.resolve()}"
