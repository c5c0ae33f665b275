"""The HTML report of a sweep: self-contained, escaped, and robust to failing parts."""

from __future__ import annotations

import base64
import contextlib
import html
import io
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from xml.etree import ElementTree

import matplotlib.pyplot as plt
import pytest
from helpers import fake_run, memory_sweep

from depthlab import plots, report, report_html, report_sections
from depthlab.config import Config
from depthlab.data import Teacher
from depthlab.inits import Gaussian
from depthlab.probes.schedule import DefaultProbes
from depthlab.records import METRICS_DIR, read_run
from depthlab.results import Sweep, load_sweep
from depthlab.summary import format_summary
from depthlab.train import train

PNG = b"\x89PNG\r\n\x1a\n"
EVIL = "<script>alert('x')</script>"
JOBS = [("tanh", 1.0, 3), ("tanh", 1.0, 12), ("relu", 4.0, 12)]  # the last one diverges


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sweep of three tiny exploding-study runs (one diverges) and a hand-written failed
    run whose error and one config value carry markup."""
    root = tmp_path_factory.mktemp("sweep")
    data = Teacher(in_dim=8, num_outputs=3, num_train=256, num_test=64)
    for job, (activation, sigma_w2, depth) in enumerate(JOBS):
        cfg = Config(
            depth=depth,
            width=16,
            activation=activation,
            init=Gaussian(sigma_w2=sigma_w2),
            data=data,
            lr=0.1,
            steps=20,
            eval_every=5,
            batch_size=32,
            probes=DefaultProbes(every=5),
            study="exploding",
        )
        train(cfg, root / str(job))
    row = read_run(root / "0") | {"run_id": "evil", "status": "failed", "error": EVIL, "study": ""}
    fake_run(root / "3", row | {"norm": '"><img src=x onerror=alert(1)>'}, status="failed")
    return root


def make_report(sweep_dir: Path, out: Path) -> tuple[str, str]:
    """Run the command line; its HTML and Markdown after checking the exit and the output."""
    plt.close("all")  # figures other tests left open are not the report's
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert report.main([str(sweep_dir), "--out", str(out)]) == 0
    assert printed.getvalue().splitlines() == [
        f"report: {out}",
        f"summary: {out.with_suffix('.md')}",
    ]
    assert plt.get_fignums() == []  # every figure closed
    return out.read_text(), out.with_suffix(".md").read_text()


@pytest.fixture(scope="module")
def made(sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The report of the sweep: its folder, HTML and Markdown."""
    out = tmp_path_factory.mktemp("report") / "r.html"
    return (out.parent, *make_report(sweep_dir, out))


def plain(summary: str) -> str:
    """The Markdown with its backslash escapes undone (its entities are left)."""
    return re.sub(r"\\([!-/:-@\[-`{-~])", r"\1", summary)


def images(page: str) -> list[bytes]:
    """The decoded bytes of every <img> of the page (each must be a base64 data URI)."""
    sources = re.findall(r"<img\b[^>]*\bsrc=\"([^\"]*)\"", page)
    assert len(sources) == page.count("<img")
    prefix = "data:image/png;base64,"
    assert all(s.startswith(prefix) for s in sources), [s[:40] for s in sources]
    return [base64.b64decode(s[len(prefix) :], validate=True) for s in sources]


def test_report_is_one_self_contained_file_with_runs_config_and_verdicts(
    sweep_dir: Path, made: tuple[Path, str, str]
) -> None:
    folder, page, summary = made
    assert sorted(p.name for p in folder.iterdir()) == ["r.html", "r.md"]
    pngs = images(page)
    assert len(pngs) >= 5 and all(png.startswith(PNG) for png in pngs)  # the generic figures
    attributes = re.findall(r"\b(?:src|href)\s*=\s*[\"']?([^\"'\s>]*)", page)
    assert not [a for a in attributes if re.match(r"(?i)(https?:)?//", a)]
    assert not re.search(r"(?i)<(script|link|iframe|object)\b", page)
    for name in ("delta_profile", "delta_heatmap", "loss_curves", "loss_vs_depth"):
        assert f'alt="{name}"' in page
    assert 'alt="delta_ratio_check"' in page and "median measured/predicted" in page
    swept = re.search(r"<h3>Swept keys</h3><div class=\"wide\"><table>(.*?)</table>", page)[1]
    for key in ("activation", "depth", "init.sigma_w2"):
        assert f"<td>{key}</td>" in swept
    diverged = read_run(sweep_dir / "2")
    assert diverged["status"] == "diverged"
    line = re.escape(f"2 ({diverged['run_id']}): ") + "[^<]*activation=relu[^<]*: diverged at step "
    assert re.search(f"<li>{line}{diverged['diverged_step']}</li>", page)
    text = plain(summary)
    assert re.search(r"^- exploding: (reproduced|not reproduced|undecided)\. ", text, re.M)
    assert "4 runs: 2 ok, 1 diverged, 1 failed" in text
    assert re.search(f"^- {line}{diverged['diverged_step']}$", text, re.M)
    assert summary.endswith("\n\nFull report: [r\\.html](r.html)\n")


def test_markup_from_the_records_is_escaped(made: tuple[Path, str, str]) -> None:
    _, page, summary = made
    assert "<script" not in page.lower() and "<img src=x" not in page
    assert "failed: &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page  # the error
    assert "<td>&quot;&gt;&lt;img src=x onerror=alert(1)&gt;</td>" in page  # a config value
    assert "<script" not in summary and "<img" not in summary
    assert "failed: &lt;script>alert('x')&lt;/script>" in plain(summary)


def test_a_failing_figure_or_study_leaves_a_note_not_a_crash(
    sweep_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthlab.studies import STUDIES, Study

    def broken(*args: object, **kwargs: object) -> plt.Figure:
        plt.figure()  # a figure left open by the failure must still be closed
        raise RuntimeError("<i>no such data</i>")

    monkeypatch.setattr(plots, "loss_curves", broken)
    monkeypatch.setitem(
        STUDIES._entries, "exploding", Study("exploding", "q?", "a", broken, broken)
    )
    page, summary = make_report(sweep_dir, tmp_path / "r.html")
    escaped = "RuntimeError: &lt;i&gt;no such data&lt;/i&gt;"
    assert f"figure loss_curves failed: {escaped}" in page
    assert f"figures of exploding failed: {escaped}" in page
    assert f"the verdict failed: {escaped}" in page
    assert 'alt="loss_curves"' not in page and 'alt="delta_profile"' in page
    assert all(png.startswith(PNG) for png in images(page))
    assert "- exploding: no verdict. the verdict failed: RuntimeError: &lt;i>" in plain(summary)


@pytest.mark.parametrize("folder", ["missing", "empty"])
def test_bad_sweep_folder_is_one_line_exit_2_and_writes_nothing(
    folder: str, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    sweep = tmp_path / folder
    if folder == "empty":
        sweep.mkdir()
    assert report.main([str(sweep)]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    lines = captured.err.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: SWEEP_DIR={sweep}: ")
    assert [p.name for p in tmp_path.iterdir()] == ([] if folder == "missing" else ["empty"])
    assert folder == "missing" or not any(sweep.iterdir())


@pytest.mark.slow
def test_module_command_line_reports_bad_input(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "depthlab.report", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: SWEEP_DIR={tmp_path / 'nope'}: no sweep folder at {tmp_path / 'nope'}"
    ]


def test_sweep_summary_tells_the_report_command(sweep_dir: Path) -> None:
    lines = format_summary(load_sweep(sweep_dir, metrics=False), report=True).splitlines()
    assert lines[-2] == f"report: python -m depthlab.report {sweep_dir.resolve()}"
    assert lines[-1].startswith("records: ")
    plain = format_summary(load_sweep(sweep_dir, metrics=False)).splitlines()
    assert not any(line.startswith("report:") for line in plain)


LINK = "[x](javascript:alert(1))"
MARKDOWN = f"{LINK} ![img](http://example.com/i.png) *em* __b__ `code` |a|b| ~~s~~ $x$"


def unescaped_markdown(summary: str) -> list[str]:
    """The lines of a report.md, less the title, the headings and the one link to the HTML,
    that hold Markdown not escaped: a link, image, heading, quote, list or table marker, or
    emphasis, code, strike-through or math punctuation without a backslash before it."""
    lines = summary.splitlines()
    assert lines[0].startswith("# depthlab report: ") and lines[-1].startswith("Full report: ")
    body = [line for line in lines[1:-1] if line not in ("## Verdicts", "## Runs")]
    body = [line[2:] if line.startswith("- ") else line for line in body]
    return [
        line
        for line in body
        if "](" in line
        or "![" in line
        or re.match(r"\s*([#>+*-]|\d+[.)])", line)
        or re.search(r"(?<!\\)[][*_`|~$]", line)
    ]


def test_md_escapes_markdown_and_markup() -> None:
    text = report_html.md(f"# {MARKDOWN} <b>&amp;</b>\n# second line\\")
    assert "\n" not in text and "<" not in text and "](" not in text and "![" not in text
    assert not re.search(r"(?<!\\)[][*_`|~$#()!]", text.replace("\\\\", ""))
    assert plain(text) == f"# {MARKDOWN} &lt;b>&amp;amp;&lt;/b> # second line\\"
    assert report_html.md(0.123456) == "0\\.1235" and report_html.md(None) == ""
    starts = ["- item", "+ item", "> quote", "=== ", "1. item", "2) item", "    code"]
    assert [report_html.md(s) for s in starts] == [
        "\\- item",
        "\\+ item",
        "\\> quote",
        "\\===",
        "1\\. item",
        "2\\) item",
        "code",
    ]
    assert report_html.md_link("r (1).html", "r (1).html") == "[r \\(1\\)\\.html](r%20%281%29.html)"


def test_markdown_in_study_text_is_escaped(tmp_path: Path) -> None:
    sweep = memory_sweep([{"run_id": "r", "status": "ok", "path": "0"}], root=tmp_path)
    parts = [
        report_html.StudyPart(f"#{LINK}", label=f"*{LINK}*", text=f"{MARKDOWN}\n# h"),
        report_html.StudyPart("- item", label="> quote", text="1. item\n==="),
    ]
    summary = report.render_markdown(sweep, parts, None, "r.html")
    assert unescaped_markdown(summary) == []
    assert f"- #{LINK}: *{LINK}*. {MARKDOWN} # h" in plain(summary).splitlines()
    assert "- - item: > quote. 1. item ===" in plain(summary).splitlines()
    error = report.render_markdown(sweep, [], f"{LINK}\n# h", "r.html")
    assert unescaped_markdown(error) == [] and f"- {LINK} # h" in plain(error).splitlines()


def test_markdown_in_records_is_escaped_and_every_problem_is_listed(
    sweep_dir: Path, tmp_path: Path
) -> None:
    root = tmp_path / f"# {LINK} *em* _u_ `c` |t|"  # the sweep folder's name
    shutil.copytree(sweep_dir, root, symlinks=True)
    row = read_run(root / "0") | {"run_id": f"id {LINK}", "status": "failed", "study": ""}
    row["error"] = f"{MARKDOWN}\n# a heading\n> a quote"
    fake_run(root / "#4 [y](z)", row, status="failed")  # a folder name (run label) in Markdown
    shutil.copytree(root / "1", root / "5")  # the same run_id twice: left out
    loop = root / "0" / METRICS_DIR / "part-99999.parquet"
    os.symlink(loop.name, loop)  # a loop: not read
    problems = load_sweep(root).problems
    assert len(problems) == 2 and f"{root / '5'}: run_id " in problems[0]
    assert problems[1].startswith(f"{loop}: a link that cannot be followed: ")

    page, summary = make_report(root, tmp_path / "out" / "r.html")
    assert unescaped_markdown(summary) == []
    assert summary.count("](") == 1 and "![" not in summary
    assert [line for line in summary.splitlines() if line.startswith("#")] == [
        f"# depthlab report: {report_html.md(root.name)}",
        "## Verdicts",
        "## Runs",
    ]
    text = plain(summary)
    assert f"# depthlab report: {root.name}" in text and f"\n{root}\n" in text
    line = re.escape(f"- #4 [y](z) (id {LINK}): ") + ".*" + re.escape(f": failed: {MARKDOWN}")
    assert re.search(f"^{line} # a heading > a quote$", text, re.M)  # one line
    for problem in problems:  # in both files, escaped for each
        assert f"- not read: {report_html.md(problem)}" in summary.splitlines()
        assert f"<li>{html.escape(problem)}</li>" in page
    section = re.search(r'<h2 id="unreadable">Files not read</h2>(.*?)<h2', page).group(1)
    assert section.count("<li>") == 2
    assert f"failed: {html.escape(MARKDOWN)}" in page  # the HTML shows the text as it is


def mixed_init_sweep() -> Sweep:
    """Four runs: Kaiming (init.nonlinearity relu, no sigma_w2) and Gaussian (sigma_w2 1
    and 2, no nonlinearity) at depths 3 and 100; width 64 in all; tiny final losses."""
    columns = {
        "run_id": ["a", "b", "c", "d"],
        "status": ["ok"] * 4,
        "diverged_step": [None] * 4,
        "path": ["0", "1", "2", "3"],
        "depth": [3, 100, 3, 100],
        "width": [64] * 4,
        "init": ["kaiming_normal", "kaiming_normal", "gaussian", "gaussian"],
        "init.nonlinearity": ["relu", "relu", None, None],
        "init.sigma_w2": [float("nan"), float("nan"), 1.0, 2.0],
        "final_loss": [3.19e-09, 0.123456, 1234.5, 2.0],
    }
    runs = [
        dict(zip(columns, values, strict=True)) for values in zip(*columns.values(), strict=True)
    ]
    return memory_sweep(runs, root=Path("mixed"))


def test_summary_shows_keys_that_vary_blank_where_they_do_not_apply() -> None:
    text = format_summary(mixed_init_sweep())
    lines = text.splitlines()
    assert "nan" not in text.lower()
    assert lines[0] == "same for every run: width=64, init.nonlinearity=relu (where set)"
    header = lines[1].split()
    assert header == ["depth", "init", "sigma_w2", "status", "loss"]  # no constant column
    assert lines[2].split() == ["3", "kaiming_normal", "ok", "3.19e-09"]  # blank sigma_w2
    assert lines[4].split() == ["3", "gaussian", "1", "ok", "1230"]  # 3 significant figures
    assert all(len(line) <= 100 for line in lines)


def test_report_tables_show_only_keys_that_vary_and_apply() -> None:
    sweep = mixed_init_sweep()
    runs = report_sections.runs_html(sweep)
    heads = re.findall(r'<th title="([^"]*)">', runs)
    assert heads == ["run", "depth", "init", "init.sigma_w2", "status", "loss"]
    assert "nan" not in runs.lower() and "<td>3.19e-09</td>" in runs
    config = report_sections.config_html(sweep)
    assert "nan" not in config.lower() and "<td>1, 2 (n/a for some runs)</td>" in config
    assert "<td>relu (where set)</td>" in config


def test_figures_as_svg_files_that_parse_as_xml(sweep_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert report.main([str(sweep_dir), "--out", str(out), "--format", "svg"]) == 0
    assert printed.getvalue().splitlines()[-1] == f"figures: {tmp_path / 'r_figures'}"
    files = sorted((tmp_path / "r_figures").iterdir())
    assert {"delta_profile.svg", "loss_curves.svg", "exploding-delta_profiles.svg"} <= {
        f.name for f in files
    }
    for file in files:
        assert ElementTree.parse(file).getroot().tag == "{http://www.w3.org/2000/svg}svg"
    assert 'src="data:image/svg+xml;base64,' in out.read_text()


def test_two_sweeps_side_by_side_name_both(sweep_dir: Path, tmp_path: Path) -> None:
    other = tmp_path / "beta"
    data = Teacher(in_dim=8, num_outputs=3, num_train=256, num_test=64)
    for job, depth in enumerate((3, 12)):
        cfg = Config(depth=depth, width=16, activation="tanh", data=data, steps=10, eval_every=5)
        train(cfg, other / str(job))
    sweep = report.load([sweep_dir, other])
    assert report.sweep_names(sweep) == [sweep_dir.name, "beta"]
    fig = plots.loss_curves(sweep)
    legend = next(ax.get_legend() for ax in fig.axes if ax.get_legend())  # top right panel
    assert legend.get_title().get_text() == "sweep"
    assert [t.get_text() for t in legend.get_texts()] == sorted([sweep_dir.name, "beta"])
    plt.close("all")
    page, summary = make_report_of([str(sweep_dir), str(other)], tmp_path / "c.html")
    assert f"<h1>depthlab report: {sweep_dir.name} vs beta</h1>" in page
    assert f"<td>{sweep_dir.name}</td>" in page and "<td>beta</td>" in page  # runs table
    assert summary.startswith(f"# depthlab report: {report_html.md(sweep_dir.name)} vs beta")
    assert "6 runs: " in plain(summary)


def make_report_of(folders: list[str], out: Path) -> tuple[str, str]:
    """The HTML and Markdown of ``python -m depthlab.report FOLDERS --out OUT``."""
    with contextlib.redirect_stdout(io.StringIO()):
        assert report.main([*folders, "--out", str(out)]) == 0
    assert plt.get_fignums() == []
    return out.read_text(), out.with_suffix(".md").read_text()


def test_not_ok_lines_take_keys_that_hold_lists() -> None:
    sweep = mixed_init_sweep()
    sweep.runs["probes.names"] = [["delta"], ["delta"], ["delta", "grads"], ["delta"]]
    sweep.runs.loc[2, "status"] = "failed"
    lines = report_sections.not_ok(sweep)
    assert len(lines) == 1 and "probes.names=['delta', 'grads']" in lines[0]
    assert "sigma_w2=1" in lines[0] and "nonlinearity" not in lines[0]
    assert "probes.names" in report_sections.runs_html(sweep)


def test_an_empty_folder_among_several_is_named(
    sweep_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert report.main([str(sweep_dir), str(empty)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.splitlines() == [
        f"error: SWEEP_DIR={sweep_dir} {empty}: no runs in {empty} (no readable run.parquet)"
    ]
    assert list(empty.iterdir()) == [] and not (sweep_dir / "compare.html").exists()
