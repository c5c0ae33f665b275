"""Safety: no code path unpickles data, and nothing reaches the network at run time."""

from __future__ import annotations

import ast
import dataclasses
import socket
from pathlib import Path

import pytest
import torch

from depthlab.config import Config
from depthlab.data import DATASETS, load_data
from depthlab.train import train

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("src", "analysis", "benchmarks")
PICKLING_MODULES = {"pickle", "cPickle", "dill", "cloudpickle", "shelve", "marshal", "joblib"}


def unsafe_calls(source: str) -> list[str]:
    """What in ``source`` can run code hidden in a data file: importing a pickling module,
    ``torch.load`` without ``weights_only=True``, ``numpy.load`` with pickles allowed,
    ``pandas.read_pickle``, and the builtins ``eval`` / ``exec``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
            found += [f"import {n}" for n in names if n.split(".")[0] in PICKLING_MODULES]
        if not isinstance(node, ast.Call):
            continue
        func, keywords = node.func, {k.arg: k.value for k in node.keywords}
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        owner = getattr(func.value, "id", "") if isinstance(func, ast.Attribute) else ""
        if isinstance(func, ast.Name) and name in ("eval", "exec"):
            found.append(f"{name}()")
        elif name == "read_pickle":
            found.append("read_pickle()")
        elif owner == "torch" and name == "load" and not _is_true(keywords.get("weights_only")):
            found.append("torch.load() without weights_only=True")
        elif owner in ("np", "numpy") and name == "load" and _is_true(keywords.get("allow_pickle")):
            found.append("numpy.load(allow_pickle=True)")
    return found


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def test_the_scanner_finds_each_unsafe_pattern() -> None:
    bad = """
import pickle
from dill import loads
torch.load(f)
torch.load(f, weights_only=False)
np.load(f, allow_pickle=True)
pd.read_pickle(f)
eval("1")
"""
    assert len(unsafe_calls(bad)) == 7
    good = "torch.load(f, weights_only=True)\nnp.load(f, allow_pickle=False)\nmodel.eval()\n"
    assert unsafe_calls(good) == []


def test_no_code_path_unpickles_data() -> None:
    files = [p for folder in SOURCES for p in sorted((ROOT / folder).rglob("*.py"))]
    assert len(files) > 30
    found = {str(p.relative_to(ROOT)): unsafe_calls(p.read_text()) for p in files}
    assert {path: calls for path, calls in found.items() if calls} == {}


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to open a connection or resolve a name is recorded and refused."""
    attempts: list[str] = []

    def refuse(*args, **kwargs):
        attempts.append(repr(args[:2]))
        raise OSError("network access during a depthlab run")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return attempts


def test_refusing_the_network_is_noticed(offline: list[str]) -> None:
    with pytest.raises(OSError, match="network access"):
        socket.create_connection(("example.org", 80))
    assert offline


def test_a_run_and_every_data_set_need_no_network(offline: list[str], tmp_path: Path) -> None:
    cfg = Config(steps=3, eval_every=1)  # the default data set, MNIST-1D, generated here
    assert train(cfg, tmp_path / "run").status == "ok"
    for name, option in DATASETS.items():
        if name == "npz":  # reads a file the user gives: nothing to fetch
            continue
        data = load_data(option(), torch.device("cpu"), torch.float32)
        assert data.num_train > 0, name
    assert train(dataclasses.replace(cfg, replicas=2), tmp_path / "batched").status == "ok"
    assert offline == []
