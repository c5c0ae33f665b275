"""The notebooks of analysis/ run top to bottom (nbclient) on their study's quick sweep."""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "analysis").glob("*.ipynb"))


def test_the_main_studies_have_notebooks() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"vanishing", "degradation", "edge_of_chaos"}


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_on_its_quick_sweep(path: Path, quick_sweep, monkeypatch, tmp_path) -> None:
    notebook = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in notebook.cells if c.cell_type == "code")  # kept clean
    monkeypatch.setenv("DEPTHLAB_SWEEP", str(quick_sweep(path.stem)))
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    client = nbclient.NotebookClient(
        notebook, timeout=300, kernel_name="python3", resources={"metadata": {"path": tmp_path}}
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    text = "".join(o.get("text", "") for o in outputs if o.output_type == "stream")
    assert f"{path.stem}: " in text  # the verdict line
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2  # the study's figures were drawn
