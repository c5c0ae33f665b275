"""depthlab.watch in the loops and models users write: an evaluation between steps, a
frozen layer, activations written as functions, a loss scale, ``out += skip`` before an
activation, reruns and a second writer in one folder, random activations, and the
user's config."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from helpers import layer_values as at
from torch import nn

import depthlab
from depthlab.errors import ConfigError
from depthlab.locks import FolderLockedError
from depthlab.records import read_metrics, read_run

F64 = torch.float64


def mlp(*tail: nn.Module) -> nn.Sequential:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 8), nn.Tanh(), nn.Linear(8, 3))


def batch() -> tuple[torch.Tensor, torch.Tensor]:
    return torch.randn(16, 6, generator=torch.Generator().manual_seed(1)), torch.arange(16) % 3


def loop(model, folder, steps: int = 3, evaluate: str = "", scale: float = 1.0, **options):
    """SGD on one batch, watched every step; ``evaluate``: an evaluation pass with gradients
    enabled (never backpropagated) "after" each watch.step or "before_backward" (between the
    training pass and its backward), or an "attack" pass differentiated with
    torch.autograd.grad before the training pass (adversarial training's, on other inputs);
    ``scale``: the loss is multiplied by it for backward."""
    x, y = batch()
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1)
    with depthlab.watch(model, folder, every=1, **options) as watch:
        for _ in range(steps):
            if evaluate == "attack":
                probe = (x + 1).requires_grad_(True)
                torch.autograd.grad(F.cross_entropy(model(probe), y), probe)
            loss = F.cross_entropy(model(x), y)
            if evaluate == "before_backward":
                F.cross_entropy(model(x[:4]), y[:4])
            optimizer.zero_grad()
            (loss * scale).backward()
            for p in model.parameters():
                if p.grad is not None:
                    p.grad /= scale
            optimizer.step()
            watch.step(loss, grad_scale=scale)
            if evaluate == "after":
                model.eval()
                F.cross_entropy(model(x[:4]), y[:4])  # gradients on, never backpropagated
                model.train()
    return watch


@pytest.mark.parametrize("evaluate", ["after", "before_backward", "attack"])
def test_an_evaluation_with_gradients_is_not_the_training_pass(tmp_path, evaluate) -> None:
    """A pass with gradients that nothing backpropagates, after watch.step or between the
    training pass and its backward, or that only torch.autograd.grad differentiates before
    the training pass, changes no record."""
    loop(mlp(), tmp_path / "plain")
    loop(mlp(), tmp_path / "evaluated", evaluate=evaluate)
    for metric in ("delta_norm", "weight_grad_norm", "act_mean"):
        for step in (0, 1, 2):
            np.testing.assert_allclose(
                at(tmp_path / "evaluated", metric, step), at(tmp_path / "plain", metric, step)
            )


def test_a_loss_scale_is_divided_out(tmp_path) -> None:
    """A backward of 1024 x the loss (mixed precision's scaler), with grad_scale=1024: the
    records equal those of the unscaled loop to 1e-6 (delta, gradient norms, histograms)."""
    loop(mlp(), tmp_path / "plain", probes="full")
    loop(mlp(), tmp_path / "scaled", scale=1024.0, probes="full")
    plain, scaled = (
        read_metrics(tmp_path / d).set_index(["step", "layer", "metric"])
        for d in ("plain", "scaled")
    )
    np.testing.assert_allclose(scaled.value, plain.value.loc[scaled.index], rtol=1e-6)


def test_a_frozen_layer_has_no_delta_and_says_so(tmp_path, caplog) -> None:
    model = mlp()
    model[0].requires_grad_(False)
    loop(model, tmp_path)
    delta = at(tmp_path, "delta_norm")
    assert np.isnan(delta[0]) and np.all(delta[1:] > 0)
    assert at(tmp_path, "delta_underflow")[0] == 0 and at(tmp_path, "delta_nonfinite")[0] == 0
    assert "0 (Linear: its output needs no gradient" in read_run(tmp_path)["skipped_layers"]


class Functional(nn.Module):
    """A net whose activations are functions (F.relu): watch sees no activation module."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.one, self.two, self.three = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.three(F.relu(self.two(F.relu(self.one(x)))))


def test_activations_written_as_functions(tmp_path) -> None:
    """No activation module: units are NaN (not phi' = 1), act = u; a layer of ReLUs that
    never fire gives exact zeros below it, recorded 0 (no layer above came near float64's
    bottom), not underflow."""
    model = Functional().to(F64)
    with torch.no_grad():
        model.two.bias.fill_(-100.0)
    x, y = batch()
    with depthlab.watch(model, tmp_path, probes="full") as watch:
        loss = F.cross_entropy(model(x.to(F64)), y)
        loss.backward()
        watch.step(loss)
    assert np.all(np.isnan(at(tmp_path, "dphi_mean"))) and np.all(
        np.isnan(at(tmp_path, "dead_frac"))
    )
    np.testing.assert_array_equal(at(tmp_path, "act_mean"), at(tmp_path, "preact_mean"))
    np.testing.assert_array_equal(at(tmp_path, "delta_norm")[:2], [0.0, 0.0])
    assert not at(tmp_path, "delta_underflow").any()


class Block(nn.Module):
    """torchvision's BasicBlock pattern: out = bn(conv(x)); out += x; relu(out)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv, self.bn, self.relu = nn.Conv1d(4, 4, 3, padding=1), nn.BatchNorm1d(4), nn.ReLU()
        self.head = nn.Linear(4 * 10, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.bn(self.conv(x))
        out += x
        return self.head(self.relu(out).flatten(1))


def test_an_inplace_skip_before_the_activation_is_not_the_layers_activation(tmp_path) -> None:
    """``out += x`` changes the norm's output: the ReLU after it is not the conv's phi, so
    the conv's a^l is its u^l = bn(z) (as recorded before the add)."""
    model = Block()
    x = torch.randn(16, 4, 10)
    with depthlab.watch(model, tmp_path, probes="full") as watch:
        loss = F.cross_entropy(model(x), torch.arange(16) % 3)
        loss.backward()
        watch.step(loss)
        model.eval()
    with torch.no_grad():
        model.train()
        u = model.bn(model.conv(x))
    assert at(tmp_path, "act_mean")[0] == pytest.approx(float(u.mean()), abs=1e-6)
    assert np.isnan(at(tmp_path, "dead_frac")[0])


def test_random_activations_do_not_change_the_users_random_numbers(tmp_path) -> None:
    draws = []
    for watched in (False, True):
        torch.manual_seed(0)  # the same net: RReLU draws only for its negative inputs
        model = nn.Sequential(nn.Linear(6, 8), nn.RReLU(), nn.Linear(8, 3))
        x, y = batch()
        torch.manual_seed(5)
        if watched:
            with depthlab.watch(model, tmp_path, probes="full") as watch:
                loss = F.cross_entropy(model(x), y)
                loss.backward()
                watch.step(loss)
        else:
            F.cross_entropy(model(x), y).backward()
        draws.append(torch.rand(3))
    torch.testing.assert_close(draws[0], draws[1])


def test_a_second_writer_is_refused_and_a_rerun_sets_everything_aside(tmp_path) -> None:
    model = mlp()
    with depthlab.watch(model, tmp_path), pytest.raises(FolderLockedError, match="written by"):
        depthlab.watch(model, tmp_path).__enter__()
    pytest.importorskip("torch.utils.tensorboard")
    for _ in range(2):
        loop(mlp(), tmp_path / "run", logger="tensorboard")
    events = list((tmp_path / "run" / "tensorboard").iterdir())
    assert len(events) == 1  # the first run's event file went with its records
    assert len(list((tmp_path / "run" / ".superseded").glob("*/tensorboard/*"))) == 1
    assert len(at(tmp_path / "run", "batch_loss")) == 1


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"num_layers": 99}, "config=num_layers: taken"),
        ({"seed": 3}, "config=seed: taken"),
        ({"run_id": 7}, "config=run_id: taken"),
        ({"torch_version": "x"}, "config=torch_version: taken"),
        ({"widths": [1, 2]}, r"config.widths=\[1, 2\]: not a scalar"),
        ({"path": "x"}, "config=path: taken"),
        ({"sweep": "x"}, "config=sweep: taken"),
        ({"device_resolved": "x"}, "config=device_resolved: taken"),
    ],
)
def test_config_cannot_overwrite_the_run_row(tmp_path, config, message) -> None:
    with pytest.raises(ConfigError, match=message):
        depthlab.watch(mlp(), tmp_path, config=config)
    assert not any(tmp_path.iterdir())


def test_batch_losses_are_flushed_as_the_loop_goes(tmp_path, monkeypatch) -> None:
    """With every=0 nothing is probed after step 0, yet batch losses reach disk at their
    checks (every 10 steps) once the flush interval has passed, before the loop ends."""
    monkeypatch.setattr("depthlab.watching.FLUSH_SECONDS", 0.0)
    model, (x, y) = mlp(), batch()
    watch = depthlab.watch(model, tmp_path, every=0).__enter__()
    for _ in range(20):
        loss = F.cross_entropy(model(x), y)
        model.zero_grad()
        loss.backward()
        watch.step(loss)
    assert len(at(tmp_path, "batch_loss", 19)) == 1 and read_run(tmp_path)["status"] == "running"
    watch.__exit__(None, None, None)
    assert read_run(tmp_path)["status"] == "ok"


class Recursive(nn.Module):
    """A forward that calls the model itself (a two-part net run as model(x, part=...))."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.inp, self.mid, self.out = nn.Linear(6, 8), nn.Linear(8, 8), nn.Linear(8, 3)

    def forward(self, x: torch.Tensor, part: str = "all") -> torch.Tensor:
        if part == "head":
            return self.out(torch.tanh(x))
        return self(self.mid(torch.tanh(self.inp(x))), part="head")


def test_a_forward_calling_the_model_is_one_pass(tmp_path) -> None:
    watch = loop(Recursive(), tmp_path)
    assert [w.name for w in watch.layers] == ["inp", "mid", "out"] and not watch.skipped


def test_layers_found_after_step_0_reach_the_run_row(tmp_path) -> None:
    """Step 0 had no pass with gradients (a loss logged under no_grad): the run row written
    then is rewritten when the layers are found, so sweeps align them."""
    model, (x, y) = mlp(), batch()
    with depthlab.watch(model, tmp_path, every=1) as watch:
        with torch.no_grad():
            watch.step(F.cross_entropy(model(x), y))
        assert read_run(tmp_path)["num_layers"] == 0
        loss = F.cross_entropy(model(x), y)
        loss.backward()
        watch.step(loss)
        assert read_run(tmp_path)["num_layers"] == 3
    assert len(at(tmp_path, "delta_norm", 1)) == 3


def test_a_watch_that_fails_to_start_gives_its_folder_back(tmp_path, monkeypatch) -> None:
    def broken(self) -> None:
        raise RuntimeError("arming failed")

    monkeypatch.setattr(depthlab.Watch, "_arm", broken)
    failed = depthlab.watch(mlp(), tmp_path)
    with pytest.raises(RuntimeError, match="arming failed"):
        failed.__enter__()
    monkeypatch.undo()
    loop(mlp(), tmp_path)  # the folder is free while ``failed`` lives
    assert read_run(tmp_path)["status"] == "ok"


def test_bad_step_arguments_are_one_line(tmp_path) -> None:
    model, (x, y) = mlp(), batch()
    with depthlab.watch(model, tmp_path) as watch:
        losses = F.cross_entropy(model(x), y, reduction="none")
        with pytest.raises(ConfigError, match="loss=a tensor of 16: invalid value; allowed: one"):
            watch.step(losses)
        with pytest.raises(ConfigError, match="grad_scale=0"):
            watch.step(losses.mean(), grad_scale=0)
