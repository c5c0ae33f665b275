"""The on-disk cache of generated data: the same arrays as made fresh, made once, and a
damaged or unwritable cache never loses data."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from depthlab.cache import CACHE_ENV, cached_arrays
from depthlab.dataset_mnist1d import _make_mnist1d, _mnist1d_arrays


def counting_maker(calls: list[int]):
    def make() -> dict[str, np.ndarray]:
        calls.append(1)
        return {"x": np.arange(12.0).reshape(3, 4), "y": np.array([2, 0, 1])}

    return make


def test_arrays_are_made_once_then_read_back_equal(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    calls: list[int] = []
    first = cached_arrays("demo", {"n": 3}, counting_maker(calls))
    again = cached_arrays("demo", {"n": 3}, counting_maker(calls))
    other = cached_arrays("demo", {"n": 4}, counting_maker(calls))
    assert len(calls) == 2  # once per key
    for k in first:
        assert np.array_equal(first[k], again[k]) and first[k].dtype == again[k].dtype
    assert len(other) == 2 and len(list(tmp_path.glob("demo-*.npz"))) == 2
    assert not list(tmp_path.glob("*.tmp"))


def test_mnist1d_from_the_cache_equals_a_fresh_generation(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    _mnist1d_arrays.cache_clear()
    try:
        cached = _mnist1d_arrays(7, 400, 0.75)  # makes and stores
        _mnist1d_arrays.cache_clear()
        read = _mnist1d_arrays(7, 400, 0.75)  # reads back
    finally:
        _mnist1d_arrays.cache_clear()
    fresh = _make_mnist1d(7, 400, 0.75)
    assert len(list(tmp_path.glob("mnist1d-*.npz"))) == 1
    for got in (cached, read):
        assert np.array_equal(got.x_train, fresh["x"]) and np.array_equal(
            got.y_test, fresh["y_test"]
        )
        assert got.x_train.shape == (300, 40) and got.x_test.shape == (100, 40)


def test_a_damaged_entry_is_made_again_and_replaced(tmp_path: Path, monkeypatch, caplog) -> None:
    monkeypatch.setenv(CACHE_ENV, str(tmp_path))
    calls: list[int] = []
    cached_arrays("demo", {"n": 3}, counting_maker(calls))
    (entry,) = tmp_path.glob("demo-*.npz")
    entry.write_bytes(b"not a zip file")
    arrays = cached_arrays("demo", {"n": 3}, counting_maker(calls))
    assert len(calls) == 2 and "unreadable" in caplog.text
    assert np.array_equal(arrays["y"], [2, 0, 1])
    assert np.array_equal(np.load(entry)["y"], [2, 0, 1])  # replaced by a good entry


def test_an_unusable_cache_folder_still_gives_the_arrays(tmp_path: Path, monkeypatch) -> None:
    folder = tmp_path / "cache"
    folder.write_text("a file where the folder should be")
    monkeypatch.setenv(CACHE_ENV, str(folder))
    calls: list[int] = []
    arrays = cached_arrays("demo", {"n": 3}, counting_maker(calls))
    again = cached_arrays("demo", {"n": 3}, counting_maker(calls))
    assert np.array_equal(arrays["x"], again["x"]) and len(calls) == 2  # made each time
    assert folder.read_text() == "a file where the folder should be"
