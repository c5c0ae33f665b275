"""The live view (``logger=tensorboard``): what TensorBoard shows is what the records hold.

The event files are read back with TensorBoard's own reader and compared with the parquet
records (the source of truth): the same steps and the same values to float32, in which
TensorBoard stores scalars; histograms of a^l and of the per-sample deltas per layer at every
probed step. ``logger`` does not make a run another run (resume) nor keep runs apart
(batching), and a bad value or a missing package is one line before any work.
"""

from __future__ import annotations

import dataclasses
import math
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from test_refusals import refusal

from depthlab.cli import EXIT_USAGE
from depthlab.config import Config
from depthlab.data import Teacher
from depthlab.errors import ConfigError
from depthlab.grouping import group_key
from depthlab.live import LIVE_DIR, TensorBoardView, check_logger, layer_tag, open_view
from depthlab.probes.schedule import DefaultProbes
from depthlab.records import NETWORK_LAYER, SUPERSEDED_DIR, read_metrics
from depthlab.resume import set_aside_other_config
from depthlab.train import Member, train, train_group

event_accumulator = pytest.importorskip(
    "tensorboard.backend.event_processing.event_accumulator",
    reason="the live view needs the tensorboard package (pip install -e '.[test]')",
)

DEPTH, WIDTH, BATCH, OUTPUTS = 3, 8, 32, 3
LAYERS = DEPTH + 1
RUN = Config(
    depth=DEPTH,
    width=WIDTH,
    steps=20,
    eval_every=10,
    batch_size=BATCH,
    threads=1,
    data=Teacher(in_dim=8, num_outputs=OUTPUTS, num_train=128, num_test=32),
    probes=DefaultProbes(every=10),  # probed steps 0, 10, 20
    logger="tensorboard",
)
PROBED = [0, 10, 20]


def events(run_folder: Path) -> event_accumulator.EventAccumulator:
    """Everything the run's event files hold (size_guidance 0: no sampling)."""
    reader = event_accumulator.EventAccumulator(
        str(run_folder / LIVE_DIR), size_guidance={"scalars": 0, "histograms": 0}
    )
    return reader.Reload()


def shown(reader: event_accumulator.EventAccumulator, tag: str) -> pd.Series:
    """A scalar tag's values by step."""
    found = reader.Scalars(tag)
    return pd.Series([e.value for e in found], index=[e.step for e in found], dtype=float)


def recorded(run_folder: Path, metric: str, layer: int = NETWORK_LAYER) -> pd.Series:
    """A metric's recorded values by step, rounded to float32 as TensorBoard keeps them."""
    rows = read_metrics(run_folder)
    rows = rows[(rows["metric"] == metric) & (rows["layer"] == layer)].sort_values("step")
    return pd.Series(rows["value"].to_numpy(np.float32), index=rows["step"].to_numpy(), dtype=float)


def assert_shows_the_records(run_folder: Path) -> event_accumulator.EventAccumulator:
    """The view's batch_loss, test_loss and per-layer delta_norm equal the records'."""
    reader = events(run_folder)
    for metric in ("batch_loss", "test_loss"):
        pd.testing.assert_series_equal(
            shown(reader, f"network/{metric}"), recorded(run_folder, metric), check_names=False
        )
    for layer in range(1, LAYERS + 1):
        pd.testing.assert_series_equal(
            shown(reader, f"delta_norm/{layer_tag(layer)}"),
            recorded(run_folder, "delta_norm", layer),
            check_names=False,
        )
    return reader


def test_the_view_shows_the_records_and_histograms_of_every_layer(tmp_path: Path) -> None:
    result = train(RUN, tmp_path)
    assert result.status == "ok"
    reader = assert_shows_the_records(tmp_path)
    assert list(shown(reader, "network/batch_loss").index) == list(range(20))
    assert list(shown(reader, "network/test_loss").index) == [0, 10, 20]
    widths = [WIDTH] * DEPTH + [OUTPUTS]  # n of layers 1..L
    for metric in ("act", "delta"):
        for layer, n in enumerate(widths, start=1):
            found = reader.Histograms(f"{metric}/{layer_tag(layer)}")
            assert [e.step for e in found] == PROBED, (metric, layer)
            assert {e.histogram_value.num for e in found} == {BATCH * n}, (metric, layer)
    # the histograms hold the probes' tensors: B * dJ/dz^l (sum of squares B delta_norm^2)
    # and a^l (mean act_mean), of this run's replica
    for layer in range(1, LAYERS + 1):
        tag = layer_tag(layer)
        delta = [e.histogram_value for e in reader.Histograms(f"delta/{tag}")]
        norm = recorded(tmp_path, "delta_norm", layer).to_numpy()
        np.testing.assert_allclose([h.sum_squares for h in delta], BATCH * norm**2, rtol=1e-5)
        act = [e.histogram_value for e in reader.Histograms(f"act/{tag}")]
        mean = recorded(tmp_path, "act_mean", layer).to_numpy()
        np.testing.assert_allclose([h.sum / h.num for h in act], mean, rtol=1e-5, atol=1e-7)


def test_each_replica_has_its_own_view_in_its_own_folder(tmp_path: Path) -> None:
    train(dataclasses.replace(RUN, replicas=2, probes=DefaultProbes(every=0)), tmp_path)
    assert not (tmp_path / LIVE_DIR).exists()
    losses = []
    for seed in (0, 1):
        reader = assert_shows_the_records(tmp_path / f"seed={seed}")
        losses.append(shown(reader, "network/batch_loss"))
    assert not np.allclose(losses[0], losses[1])  # each its own replica's


def test_the_view_keeps_non_finite_scalars_and_bins_finite_values(tmp_path: Path) -> None:
    view = TensorBoardView(tmp_path)
    view.scalars(0, {"loss": math.nan, "accuracy": 0.5})
    view.layer_scalars(0, "delta_norm", [1.0, math.inf], names=["fc1", "fc2"])
    values = torch.tensor([[1.0, math.nan], [math.inf, 2.0]])
    view.layer_histograms(0, "act", [values, torch.full((3,), math.nan), torch.ones(2, 3)])
    view.close()
    reader = events(tmp_path)
    assert math.isnan(reader.Scalars("network/loss")[0].value)
    assert reader.Scalars("delta_norm/l002_fc2")[0].value == math.inf
    assert reader.Histograms("act/l001")[0].histogram_value.num == 2  # NaN and inf left out
    assert "act/l002" not in reader.Tags()["histograms"]  # nothing finite: no histogram
    assert reader.Histograms("act/l003")[0].histogram_value.num == 6


def test_layer_tags_sort_in_layer_order() -> None:
    assert layer_tag(3) == "l003" and layer_tag(3, "fc2") == "l003_fc2"
    tags = [layer_tag(layer) for layer in range(1, 1002)]
    assert sorted(tags[:999]) == tags[:999]


def test_a_bad_logger_is_one_line_exit_2_and_nothing_written(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    status, err = refusal(["logger=tb"], tmp_path, capsys)
    assert status == EXIT_USAGE
    assert err == "error: logger=tb: unknown value; allowed: none, tensorboard\n"
    assert list(tmp_path.iterdir()) == []


def test_without_tensorboard_the_logger_says_how_to_install_it(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)  # cannot be imported
    with pytest.raises(ConfigError) as caught:
        check_logger("tensorboard")
    assert "\n" not in str(caught.value)
    assert "pip install 'depthlab[tensorboard]'" in str(caught.value)
    status, err = refusal(["logger=tensorboard"], tmp_path, capsys)
    assert status == EXIT_USAGE and err.count("\n") == 1 and "depthlab[tensorboard]" in err
    # logger=none needs nothing of it: no view, and a run trains without the package
    assert open_view("none", tmp_path) is None
    plain = dataclasses.replace(RUN, logger="none", steps=5)
    assert train(plain, tmp_path / "plain").status == "ok"
    assert not (tmp_path / "plain" / LIVE_DIR).exists()


def test_logger_does_not_make_a_run_another_run(tmp_path: Path) -> None:
    plain = dataclasses.replace(RUN, logger="none")
    first = train(plain, tmp_path)
    again = train(RUN, tmp_path)  # logger=tensorboard added to a finished run's command
    assert again.resumed and again.row["run_id"] == first.row["run_id"]
    assert not (tmp_path / LIVE_DIR).exists()
    assert set_aside_other_config(tmp_path, RUN) is None  # Hydra's files: the same run too


def test_a_run_trained_again_sets_its_old_view_aside(tmp_path: Path) -> None:
    first = train(RUN, tmp_path)
    again = train(dataclasses.replace(RUN, resume=False), tmp_path)
    assert again.row["run_id"] != first.row["run_id"]
    (kept,) = (tmp_path / SUPERSEDED_DIR).iterdir()
    assert (kept / LIVE_DIR).is_dir()  # the old events went with the old records
    assert_shows_the_records(tmp_path)  # and the view holds the new run's only


def test_runs_that_differ_only_in_logger_train_as_one_batched_model(tmp_path: Path) -> None:
    plain = dataclasses.replace(RUN, logger="none", seed=1)
    assert group_key(plain) == group_key(dataclasses.replace(plain, logger="tensorboard"))
    results = train_group([Member(RUN, tmp_path / "a"), Member(plain, tmp_path / "b")])
    assert [r.row["batched_runs"] for r in results] == [2, 2]
    assert_shows_the_records(tmp_path / "a")
    assert not (tmp_path / "b" / LIVE_DIR).exists()


def test_every_view_is_closed_even_when_one_cannot_be() -> None:
    """A view whose close fails (a full disk) neither leaves the others open nor is hidden."""
    from types import SimpleNamespace

    from depthlab.train import close_views

    closed = []

    def view(n: int, fails: bool) -> SimpleNamespace:
        def close() -> None:
            closed.append(n)
            if fails:
                raise OSError(f"cannot write view {n}")

        return SimpleNamespace(close=close)

    runs = [SimpleNamespace(view=view(1, True)), SimpleNamespace(view=None)]
    runs.append(SimpleNamespace(view=view(2, False)))
    with pytest.raises(OSError, match="cannot write view 1"):
        close_views(runs)
    assert sorted(closed) == [1, 2]
