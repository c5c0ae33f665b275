"""Config composition and validation: every option composes, every bad value is one clear line."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_module

from depthlab.cli import check_command_line, expand_jobs, first_problem
from depthlab.config import GROUPS, Config, register_configs, to_config, validate
from depthlab.errors import ConfigError

OPTIONS = [(group, name) for group, registry in GROUPS.items() for name in registry.names()]


@pytest.fixture(autouse=True)
def store() -> None:
    register_configs()


def composed(*overrides: str) -> Config:
    with initialize_config_module("depthlab.conf", version_base="1.3"):
        return to_config(compose("config", overrides=list(overrides)))


def test_default_composition_is_the_dataclass_default() -> None:
    assert composed() == Config()


def test_defaults_are_the_classic_setting() -> None:
    cfg = Config()
    assert (cfg.activation, cfg.init.name, cfg.optimizer.name) == (
        "sigmoid",
        "torch_default",
        "sgd",
    )
    assert cfg.data.name == "mnist1d"


@pytest.mark.parametrize(("group", "name"), OPTIONS)
def test_every_group_option_composes_with_its_parameters(group: str, name: str) -> None:
    cfg = composed(f"{group}={name}")
    option = getattr(cfg, group)
    assert type(option) is GROUPS[group][name] and option.name == name
    if name == "npz":  # needs a file: the error names the key
        with pytest.raises(ConfigError, match=r"^data\.path="):
            validate(cfg)
    else:
        validate(cfg)


def test_group_parameters_override() -> None:
    cfg = composed(
        "init=gaussian",
        "init.sigma_w2=1.5",
        "init.sigma_b2=0.05",
        "optimizer=adam",
        "optimizer.weight_decay=0.01",
        "data=digits",
    )
    assert (cfg.init.sigma_w2, cfg.init.sigma_b2) == (1.5, 0.05)
    assert cfg.optimizer.weight_decay == 0.01 and cfg.data.name == "digits"


def test_top_level_keys_are_the_architecture_contract() -> None:
    keys = {f.name for f in dataclasses.fields(Config)}
    contract = {
        "depth",
        "width",
        "activation",
        "init",
        "residual",
        "norm",
        "data",
        "optimizer",
        "lr",
        "batch_size",
        "steps",
        "seed",
        "device",
        "dtype",
    }
    assert contract <= keys


@pytest.mark.parametrize(
    ("overrides", "start"),
    [
        (["depth=0"], "depth=0: "),
        (["depth=1001"], "depth=1001: "),
        (["width=-1"], "width=-1: "),
        (["activation=swish"], "activation=swish: "),
        (["output_activation=foo"], "output_activation=foo: "),
        (["init=foo"], "init=foo: "),
        (["data=foo"], "data=foo: "),
        (["optimizer=foo"], "optimizer=foo: "),
        (["norm=groupnorm"], "norm=groupnorm: "),
        (["lr=0"], "lr=0.0: "),
        (["lr=-1"], "lr=-1.0: "),
        (["batch_size=0"], "batch_size=0: "),
        (["steps=-1"], "steps=-1: "),
        (["dtype=float16"], "dtype=float16: "),
        (["dept=3"], "dept=3: unknown key"),
        (["+foo=1"], "foo=1: unknown key"),
        (["init=gaussian", "init.sigma_w=2"], "init.sigma_w=2: unknown key"),
        (["init=gaussian", "init.sigma_w2=-1"], "init.sigma_w2=-1.0: "),
        (["depth=abc"], "depth=abc: wrong type"),
        (["residual=maybe"], "residual=maybe: wrong type"),
        (["depth=3,10"], "depth=3,10: several values"),
        (["data=quadratic", "loss=cross_entropy"], "loss=cross_entropy: "),
        (["optimizer=momentum", "optimizer.momentum=1.5"], "optimizer.momentum=1.5: "),
    ],
)
def test_bad_values_are_one_line_with_key_value_and_allowed(
    overrides: list[str], start: str
) -> None:
    message = first_problem(overrides, multirun=False)
    assert message.startswith(start)
    assert "allowed: " in message and "\n" not in message


def test_a_preset_without_its_plus_is_told_to_add_one() -> None:
    for key, name in (("experiment", "vanishing_quick"), ("variant", "dynamics_linear")):
        for line in (f"{key}={name}", f"++{key}={name}"):
            message = first_problem([line], multirun=True)
            assert message.startswith(f"{key}={name}: not in the defaults list")
            assert f"allowed: +{key}={name}" in message and "\n" not in message


@pytest.mark.parametrize("line", ["experiment=nosuch", "+experiment=nosuch", "++experiment=nosuch"])
def test_an_unknown_preset_lists_the_presets_in_one_line(line: str) -> None:
    message = first_problem([line], multirun=True)
    assert message.startswith("experiment=nosuch: ") and "\n" not in message
    assert "+experiment" in message or "no such preset" in message
    allowed = message.partition("allowed: ")[2]
    assert "vanishing, vanishing_quick" in allowed and "born_dead" in allowed


def test_unknown_key_lists_the_keys_that_exist() -> None:
    message = first_problem(["init=gaussian", "init.sigma_w=2"], multirun=False)
    assert message.endswith("allowed: name, sigma_b2, sigma_w2")


def test_a_bad_value_anywhere_in_a_sweep_is_found_before_running() -> None:
    assert first_problem(["depth=3,10,0"], multirun=True).startswith("depth=0: ")
    assert first_problem(["depth=3,10", "activation=relu,tanh"], multirun=True) == ""


def test_sweep_expands_like_hydras_basic_sweeper() -> None:
    with initialize_config_module("depthlab.conf", version_base="1.3"):
        jobs = expand_jobs(["depth=3,10", "activation=sigmoid,relu", "steps=5"], True, "config")
    assert len(jobs) == 4
    assert sorted(tuple(sorted(j)) for j in jobs) == sorted(
        tuple(sorted([f"depth={d}", f"activation={a}", "steps=5"]))
        for d in (3, 10)
        for a in ("sigmoid", "relu")
    )


def test_cuda_is_refused_without_a_gpu() -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    assert first_problem(["device=cuda"], multirun=False).startswith("device=cuda: ")


def test_config_dir_joins_the_search_path(tmp_path) -> None:
    (tmp_path / "experiment").mkdir()
    (tmp_path / "experiment" / "seven.yaml").write_text("# @package _global_\ndepth: 7\n")
    configs = check_command_line(["--config-dir", str(tmp_path), "+experiment=seven"])
    assert [c.depth for c in configs] == [7]
    with pytest.raises(SystemExit) as stop:
        check_command_line(["--config-dir", str(tmp_path), "+experiment=seven", "width=0"])
    assert stop.value.code == 2


def test_multirun_mode_from_an_override_counts_as_dash_m() -> None:
    assert first_problem(["hydra.mode=MULTIRUN", "depth=1,2"], multirun=False) == ""


def test_glob_sweeps_over_group_options() -> None:
    configs = check_command_line(["-m", "init=glob(xavier*)"])
    assert sorted(c.init.name for c in configs) == ["xavier_normal", "xavier_uniform"]
