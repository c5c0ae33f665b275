"""Sweep.frame joins any run key and aligns depths at the output; load_sweeps reads several
sweeps as one, every run and frame row labelled with its sweep."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from helpers import Metric, fake_sweep, memory_sweep, metric_frame

from depthlab.errors import ConfigError
from depthlab.records import METRICS_SCHEMA
from depthlab.results import load_sweep, load_sweeps


def run_row(depth: int, **keys) -> dict:
    """A run row of a ReLU net of ``depth`` hidden layers, run_id ``r{depth}``."""
    return {"run_id": f"r{depth}", "depth": depth, "activation": "relu", "seed": 7, **keys}


def profile(depth: int, offset: float = 0.0) -> list[Metric]:
    """delta_norm at step 0 of layers 1..depth + 1 (the output layer), valued offset + layer."""
    return [(0, layer, "delta_norm", offset + layer) for layer in range(1, depth + 2)]


def test_sweep_frame_joins_swept_keys(tmp_path: Path) -> None:
    fake_sweep(
        tmp_path,
        [run_row(3), run_row(10)],
        {"r3": [(0, 0, "loss", 3.0)], "r10": [(0, 0, "loss", 10.0)]},
    )
    sweep = load_sweep(tmp_path)
    assert sweep.swept_keys() == ["depth"]
    frame = sweep.frame()
    assert isinstance(frame, pd.DataFrame)
    assert list(frame["depth"]) == list(frame["value"].astype(int))
    assert frame["layers_from_output"].isna().all()  # network-level rows have no layer


def test_sweep_frame_aligns_depths_at_the_output_and_names_an_unknown_key(tmp_path: Path) -> None:
    fake_sweep(tmp_path, [run_row(3), run_row(10)], {"r3": profile(3), "r10": profile(10)})
    sweep = load_sweep(tmp_path)
    frame = sweep.frame(["depth", "status"])
    distance = frame["depth"] + 1 - frame["value"]
    assert (frame["layers_from_output"] == distance).all()
    at_output = frame[frame["layers_from_output"] == 0]
    assert sorted(at_output["value"]) == [4.0, 11.0]  # each net's output layer
    with pytest.raises(ConfigError, match="keys=widht: not a run column"):
        sweep.frame(["widht"])


def test_sweep_frame_joins_any_run_key_asked_for(tmp_path: Path) -> None:
    runs = [
        run_row(3, lr=0.1, **{"init.sigma_w2": 2.0}),
        run_row(5, lr=0.5, **{"init.sigma_w2": 1.5}),
    ]
    fake_sweep(tmp_path, runs, {"r3": profile(3), "r5": profile(5, 100.0)})
    sweep = load_sweep(tmp_path)
    frame = sweep.frame(["lr", "init.sigma_w2", "activation", "path", "seed"])
    assert list(frame.columns) == [
        *METRICS_SCHEMA.names,
        "lr",
        "init.sigma_w2",
        "activation",
        "path",
        "layers_from_output",
    ]
    first = frame["value"] < 100  # the rows of r3
    assert set(frame.loc[first, "lr"]) == {0.1} and set(frame.loc[~first, "lr"]) == {0.5}
    assert set(frame.loc[first, "init.sigma_w2"]) == {2.0}
    assert set(frame.loc[~first, "init.sigma_w2"]) == {1.5}
    assert set(frame["activation"]) == {"relu"} and set(frame["seed"]) == {7}
    assert set(frame.loc[first, "path"]) == {"0"} and set(frame.loc[~first, "path"]) == {"1"}
    assert list(frame.loc[~first, "layers_from_output"]) == [5, 4, 3, 2, 1, 0]


@pytest.fixture
def two_sweeps(tmp_path: Path) -> tuple[Path, Path]:
    """Sweep ``plain`` of tanh nets at depths 3 and 10, sweep ``residual`` of a ReLU net at
    depth 3; delta values 100 * sweep + layer (sweep 0 or 1), losses 100 * sweep + depth."""
    plain, residual = tmp_path / "plain", tmp_path / "residual"
    fake_sweep(
        plain,
        [run_row(3, activation="tanh", run_id="p3"), run_row(10, activation="tanh", run_id="p10")],
        {"p3": [(0, 0, "loss", 3.0), *profile(3)], "p10": [(0, 0, "loss", 10.0), *profile(10)]},
    )
    fake_sweep(
        residual, [run_row(3, run_id="q3")], {"q3": [(0, 0, "loss", 103.0), *profile(3, 100.0)]}
    )
    return plain, residual


def test_load_sweeps_labels_every_run_and_frame_row_with_its_sweep(two_sweeps) -> None:
    plain, residual = two_sweeps
    sweep = load_sweeps([plain, residual])
    assert sweep.problems == [] and sweep.root == plain
    assert sweep.folders == {"plain": plain, "residual": residual}
    assert list(sweep.runs.columns[:2]) == ["sweep", "run_id"]
    assert list(sweep.runs["sweep"]) == ["plain", "plain", "residual"]
    assert list(sweep.runs["run_id"]) == ["p3", "p10", "q3"]
    alone = [load_sweep(plain).metrics, load_sweep(residual).metrics]
    pd.testing.assert_frame_equal(sweep.metrics, pd.concat(alone, ignore_index=True))
    assert sweep.swept_keys() == ["depth", "activation"]  # sweep is a label, not a key
    frame = sweep.frame()
    assert list(frame.columns[6:]) == [
        "sweep",
        "depth",
        "activation",
        "status",
        "layers_from_output",
    ]
    labelled = frame["sweep"].map({"plain": 0.0, "residual": 100.0})
    assert ((frame["value"] - labelled).between(0, 99)).all()  # each row carries its own sweep
    loss = frame[frame["metric"] == "loss"]
    assert list(zip(loss["sweep"], loss["depth"], loss["value"], strict=True)) == [
        ("plain", 3, 3.0),
        ("plain", 10, 10.0),
        ("residual", 3, 103.0),
    ]
    at_output = frame[frame["layers_from_output"] == 0]
    assert list(at_output["value"]) == [4.0, 11.0, 104.0]
    assert [sweep.run_folder(run) for _, run in sweep.runs.iterrows()] == [
        plain / "0",
        plain / "1",
        residual / "0",
    ]


def test_load_sweeps_takes_names_and_a_metric_selection(two_sweeps) -> None:
    plain, residual = two_sweeps
    sweep = load_sweeps([residual, plain], names=["after", "before"], metrics="loss")
    assert list(sweep.runs["sweep"]) == ["after", "before", "before"]
    assert sweep.folders == {"after": residual, "before": plain}
    expected = [("q3", 7, 0, 0, "loss", 103.0), ("p3", 7, 0, 0, "loss", 3.0)]
    expected.append(("p10", 7, 0, 0, "loss", 10.0))
    pd.testing.assert_frame_equal(sweep.metrics, metric_frame(expected))
    assert list(sweep.frame(["depth"])["sweep"]) == ["after", "before", "before"]
    for names in (["one"], ["same", "same"]):
        with pytest.raises(ConfigError, match="names="):
            load_sweeps([plain, residual], names=names)
    with pytest.raises(ConfigError, match="no sweep folder"):
        load_sweeps([])


def test_folders_of_the_same_name_are_told_apart_by_their_parents(two_sweeps, tmp_path) -> None:
    plain, _ = two_sweeps
    shutil.copytree(plain, tmp_path / "old" / "plain")
    fake_sweep(tmp_path / "new" / "plain", [run_row(4, run_id="n4")], {"n4": profile(4)})
    sweep = load_sweeps([tmp_path / "old" / "plain", tmp_path / "new" / "plain"])
    assert list(sweep.runs["sweep"]) == ["old/plain", "old/plain", "new/plain"]
    with pytest.raises(ConfigError, match="a folder twice"):
        load_sweeps([plain, plain])


def test_a_run_in_two_sweeps_is_read_once_and_named(two_sweeps, tmp_path) -> None:
    plain, residual = two_sweeps
    shutil.copytree(plain / "1", residual / "1")  # p10 copied into the second sweep
    sweep = load_sweeps([plain, residual])
    assert sweep.problems == [f"{residual / '1'}: run_id p10 also in sweep plain: left out"]
    assert list(sweep.runs["run_id"]) == ["p3", "p10", "q3"]
    assert list(sweep.runs["sweep"]) == ["plain", "plain", "residual"]
    counts = sweep.metrics.groupby("run_id").size().to_dict()
    assert counts == {"p3": 5, "p10": 12, "q3": 5}  # p10's rows once
    same = load_sweeps([plain, plain], names=["a", "b"])
    assert list(same.runs["sweep"]) == ["a", "a"] and len(same.problems) == 2


def test_fake_sweep_takes_rows_by_run_or_tidy_rows(tmp_path: Path) -> None:
    runs = [run_row(3, folder="a"), run_row(5, folder="b", status="diverged")]
    by_run = {"r3": profile(3), "r5": profile(5, 100.0)}
    written = fake_sweep(tmp_path / "by_run", runs, by_run)
    assert written == [(r, 7, *m) for r in ("r3", "r5") for m in by_run[r]]
    assert fake_sweep(tmp_path / "tidy", runs, written) == written
    for folder in ("by_run", "tidy"):
        sweep = load_sweep(tmp_path / folder)
        assert list(sweep.runs["path"]) == ["a", "b"]
        assert list(sweep.runs["status"]) == ["ok", "diverged"]
        pd.testing.assert_frame_equal(sweep.metrics, metric_frame(written))
    with pytest.raises(ValueError, match="seeds"):
        fake_sweep(tmp_path / "bad", [run_row(3)], [("r3", 0, 0, 1, "delta_norm", 1.0)])


def test_a_live_view_key_is_never_a_swept_key() -> None:
    """Runs resumed with logger=tensorboard (or read from before the key existed) differ in
    logger only in how they were shown: no table or figure splits runs by it."""
    runs = [
        {"run_id": "a", "depth": 3, "logger": "none"},
        {"run_id": "b", "depth": 10, "logger": "tensorboard"},
        {"run_id": "c", "depth": 30, "logger": None},
    ]
    assert memory_sweep(runs).swept_keys() == ["depth"]
