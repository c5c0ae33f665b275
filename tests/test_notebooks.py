"""The notebooks of analysis/: committed executed (their outputs readable without running
them), and they run top to bottom (nbclient) with analysis/ as the kernel's working folder:
a study's notebook on its study's quick sweep, the others (watch.ipynb: a user's own model
under depthlab.watch) on what they make themselves, in a repository of their own; how a
study's notebook finds its sweep (depthlab.studies.locate)."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
from helpers import fake_sweep
from omegaconf import OmegaConf

from depthlab import locks
from depthlab.studies import STUDIES, locate

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ANALYSIS = Path(__file__).resolve().parents[1] / "analysis"
NOTEBOOKS = sorted(ANALYSIS.glob("*.ipynb"))
STUDY_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem in STUDIES.names()]
OTHER_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem not in STUDIES.names()]
FIGURE_COUNT = "figures drawn:"
# A table cell that reads as a zero written with decimals ("0.0000") is a number rounded
# away; the notebooks print floats as {:.3g}, which writes a true zero as "0".
CELL = re.compile(r"<td[^>]*>\s*(.*?)\s*</td>", re.S)


def test_the_main_studies_have_notebooks() -> None:
    assert {p.stem for p in STUDY_NOTEBOOKS} >= {"vanishing", "degradation", "edge_of_chaos"}
    assert {p.stem for p in OTHER_NOTEBOOKS} >= {"watch"}


def outputs_of(notebook) -> list:
    return [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]


def printed(notebook) -> str:
    return "".join(o.get("text", "") for o in outputs_of(notebook) if o.output_type == "stream")


def images_of(notebook) -> list[str]:
    return [o.data["image/png"] for o in outputs_of(notebook) if "image/png" in o.get("data", {})]


def rounded_to_zero(notebook) -> list[str]:
    """The table cells that print a number as a zero with decimals (a nonzero rounded away)."""
    cells = [
        text
        for o in outputs_of(notebook)
        for text in CELL.findall(o.get("data", {}).get("text/html", ""))
    ]
    return [t for t in cells if re.fullmatch(r"-?0\.0*(e[+-]?\d+)?", t)]


def check_outputs(notebook, study: str | None) -> None:
    """What every executed notebook shows: no error, nothing on stderr, its figures each
    once (no image twice: the symptom of a figure displayed and also flushed by the inline
    backend), and no table cell printing a nonzero number as 0; a study's notebook
    (``study`` its name, None for the others) also its verdict line."""
    assert not [o for o in outputs_of(notebook) if o.output_type == "error"]
    assert not [o for o in outputs_of(notebook) if o.get("name") == "stderr"], "stderr output"
    if study is not None:
        assert re.search(
            rf"^{study}: (reproduced|not reproduced|undecided)\. ", printed(notebook), re.M
        )
    images = images_of(notebook)
    assert len(images) >= 2  # the notebook's figures were drawn
    assert len(set(images)) == len(images), "a figure is shown twice"
    assert rounded_to_zero(notebook) == []


def study_of(path: Path) -> str | None:
    """The study a notebook belongs to (its name), None for the other notebooks."""
    return path.stem if path.stem in STUDIES.names() else None


def count_figures(notebook) -> None:
    """Append the cell that prints how many figures the notebook keeps in ``figures``."""
    notebook.cells.append(nbformat.v4.new_code_cell(f"print({FIGURE_COUNT!r}, len(figures))"))


def check_figure_count(notebook) -> None:
    """Every figure in the notebook's ``figures`` was shown, exactly once."""
    drawn = int(re.search(rf"{FIGURE_COUNT} (\d+)", printed(notebook)).group(1))
    assert len(images_of(notebook)) == drawn


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_committed_notebook_carries_its_outputs(path: Path) -> None:
    """Committed executed, top to bottom, without an error: GitHub shows the outputs."""
    notebook = nbformat.read(path, as_version=4)
    code = [c for c in notebook.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
    check_outputs(notebook, study_of(path))


@pytest.mark.slow
@pytest.mark.parametrize("path", STUDY_NOTEBOOKS, ids=[p.stem for p in STUDY_NOTEBOOKS])
def test_notebook_runs_from_analysis_on_its_quick_sweep(
    path: Path, quick_sweep, monkeypatch
) -> None:
    notebook = nbformat.read(path, as_version=4)
    count_figures(notebook)  # the study's figures, kept in `figures`: each shown once
    sweep = quick_sweep(path.stem)
    monkeypatch.setenv(locate.SWEEP_ENV, str(sweep))
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(ANALYSIS)}},
    )
    client.execute()  # raises CellExecutionError, with the cell and traceback, on any error
    text = printed(notebook)
    assert f"sweep: {os.path.relpath(sweep, ANALYSIS)}\n" in text  # $DEPTHLAB_SWEEP
    check_outputs(notebook, path.stem)
    check_figure_count(notebook)


@pytest.mark.slow
@pytest.mark.parametrize("path", OTHER_NOTEBOOKS, ids=[p.stem for p in OTHER_NOTEBOOKS])
def test_notebook_runs_from_analysis_of_a_repository_of_its_own(path: Path, tmp_path: Path) -> None:
    """A notebook that makes its own records (under the repository's outputs/) runs in a
    fake repository (pyproject.toml marks its root), so the real outputs/ is left alone."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "analysis").mkdir()
    notebook = nbformat.read(path, as_version=4)
    count_figures(notebook)
    client = nbclient.NotebookClient(
        notebook,
        timeout=300,
        kernel_name="python3",
        resources={"metadata": {"path": str(tmp_path / "analysis")}},
    )
    client.execute()
    check_outputs(notebook, None)
    check_figure_count(notebook)
    made = sorted(p.parent.relative_to(tmp_path) for p in tmp_path.rglob("run.parquet"))
    assert made, "the notebook recorded no run"
    assert all(p.parts[0] == "outputs" for p in made), made


# depthlab.studies.locate: which sweep a notebook reads, on fake sweeps in a fake repository


def preset_sweep(folder: Path, preset: str, statuses: list[str], jobs: int | None = None) -> Path:
    """A sweep folder as ``python -m depthlab.run -m +experiment=preset`` leaves it: Hydra's
    multirun.yaml (a preset sweeping ``jobs`` depths) and one run folder per status (0, 1,
    ..., written by :func:`helpers.fake_sweep`)."""
    jobs = len(statuses) if jobs is None else jobs
    folder.mkdir(parents=True)
    saved = {
        "hydra": {
            "sweeper": {"params": {"depth": ",".join(str(3 + d) for d in range(jobs))}},
            "overrides": {"task": [f"+experiment={preset}"]},
        }
    }
    OmegaConf.save(OmegaConf.create(saved), folder / locate.SWEEP_FILE)
    fake_sweep(folder, [{"run_id": f"{preset}{n}", "status": s} for n, s in enumerate(statuses)])
    return folder


@pytest.fixture
def repository(tmp_path: Path, monkeypatch) -> Path:
    """A fake repository (conf/experiment marks its root), the working folder its analysis/."""
    (tmp_path / "conf" / "experiment").mkdir(parents=True)
    (tmp_path / "analysis").mkdir()
    monkeypatch.chdir(tmp_path / "analysis")
    monkeypatch.delenv(locate.SWEEP_ENV, raising=False)
    return tmp_path


@pytest.fixture
def launches(monkeypatch) -> list[dict]:
    """The commands sweep_for starts (none really runs: each exits 0)."""
    calls: list[dict] = []

    def fake_run(command, **options):
        calls.append({"command": command, **options})
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(locate.subprocess, "run", fake_run)
    return calls


def test_depthlab_sweep_comes_first(repository: Path, launches, monkeypatch) -> None:
    preset_sweep(repository / "outputs" / "sweeps" / "a", "vanishing", ["ok"])
    given = repository / "elsewhere"
    given.mkdir()
    monkeypatch.setenv(locate.SWEEP_ENV, str(given))
    assert locate.sweep_for("vanishing") == given
    monkeypatch.setenv(locate.SWEEP_ENV, str(repository / "missing"))
    with pytest.raises(FileNotFoundError, match="DEPTHLAB_SWEEP"):
        locate.sweep_for("vanishing")
    assert launches == []


def test_the_newest_finished_full_sweep_before_a_quick_one(repository: Path, launches) -> None:
    sweeps = repository / "outputs" / "sweeps" / "2026-01-01"
    old = preset_sweep(sweeps / "10-00-00", "vanishing", ["ok", "diverged"])
    new = preset_sweep(sweeps / "11-00-00", "vanishing", ["ok", "failed"])
    os.utime(old / locate.SWEEP_FILE, (1, 1))
    preset_sweep(repository / "outputs" / "studies" / "vanishing_quick", "vanishing_quick", ["ok"])
    preset_sweep(sweeps / "12-00-00", "degradation", ["ok"])  # another study's
    assert locate.sweep_for("vanishing") == new.resolve()
    os.utime(new / locate.SWEEP_FILE, (0, 0))
    assert locate.sweep_for("vanishing") == old.resolve()
    assert launches == []


def test_an_unfinished_sweep_is_passed_over(repository: Path, launches) -> None:
    outputs = repository / "outputs"
    preset_sweep(outputs / "a", "vanishing", ["ok", "running"])  # a run still training
    preset_sweep(outputs / "b", "vanishing", ["ok"], jobs=2)  # a job not started
    held = preset_sweep(outputs / "c", "vanishing", ["ok"])
    quick = preset_sweep(outputs / "d", "vanishing_quick", ["ok", "ok"])
    with locks.locked([held]):  # the sweep's command still runs
        assert locate.sweep_for("vanishing") == quick.resolve()
    assert locate.sweep_for("vanishing") == held.resolve()
    assert launches == []


def test_without_a_sweep_the_quick_preset_is_run_in_the_repository_root(
    repository: Path, launches
) -> None:
    preset_sweep(repository / "outputs" / "a", "vanishing", ["ok", "running"])
    said: list[str] = []
    made = locate.sweep_for("vanishing", say=said.append)
    assert made == repository.resolve() / "outputs" / "studies" / "vanishing_quick"
    (launch,) = launches
    assert launch["cwd"] == repository.resolve()
    assert launch["command"][1:] == [
        "-m",
        "depthlab.run",
        "-m",
        "+experiment=vanishing_quick",
        "hydra.sweep.dir=outputs/studies/vanishing_quick",
    ]
    assert "+experiment=vanishing_quick" in said[0]


def test_quick_false_ignores_quick_sweeps_and_runs_the_full_preset(
    repository: Path, launches
) -> None:
    preset_sweep(repository / "outputs" / "q", "vanishing_quick", ["ok"])
    made = locate.sweep_for("vanishing", quick=False, say=None)
    assert made == repository.resolve() / "outputs" / "studies" / "vanishing"
    assert launches[0]["command"][4] == "+experiment=vanishing"


def test_a_failed_making_says_why(repository: Path, monkeypatch) -> None:
    def failing(command, **options):
        return subprocess.CompletedProcess(command, 2, "", "error: depth must be >= 1")

    monkeypatch.setattr(locate.subprocess, "run", failing)
    with pytest.raises(RuntimeError, match="exit status 2:\nerror: depth must be >= 1"):
        locate.sweep_for("vanishing", say=None)


def test_the_root_is_found_from_any_folder_inside(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text("")
    inner = tmp_path / "analysis" / "deeper"
    inner.mkdir(parents=True)
    assert locate.project_folder(inner) == tmp_path.resolve()
