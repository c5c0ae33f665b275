"""The command line as users type it: python -m depthlab.run, in a subprocess."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from depthlab.records import METRICS_DIR, read_metrics, read_run

QUICK = ["data=teacher", "width=16", "steps=20", "eval_every=10", "batch_size=32"]


def depthlab_run(
    *args: str, cwd: Path, env: dict | None = None, timeout: float = 240
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "depthlab.run", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
def test_multirun_from_an_unrelated_directory_writes_valid_records(tmp_path: Path) -> None:
    proc = depthlab_run("-m", "depth=3,10", "activation=sigmoid,relu", *QUICK, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    run_files = sorted(tmp_path.glob("outputs/sweeps/*/*/*/run.parquet"))
    assert len(run_files) == 4
    rows = [read_run(f.parent) for f in run_files]
    assert {(r["depth"], r["activation"]) for r in rows} == {
        (d, a) for d in (3, 10) for a in ("sigmoid", "relu")
    }
    assert all(r["status"] == "ok" for r in rows)
    for f in run_files:
        assert set(read_metrics(f.parent)["step"]) >= {0, 10, 20}
        assert (f.parent / ".hydra" / "config.yaml").exists()
    # the summary table: a header, one line per run, and the folder
    lines = proc.stdout.strip().splitlines()
    header = next(i for i, line in enumerate(lines) if "status" in line and "test_acc" in line)
    assert "depth" in lines[header] and "activation" in lines[header]
    assert sum(" ok " in f" {line} " for line in lines[header + 1 :]) == 4
    assert lines[-1].startswith("records: ")


@pytest.mark.slow
def test_bad_value_is_one_line_exit_2_and_no_folder(tmp_path: Path) -> None:
    proc = depthlab_run("-m", "depth=3,0", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "error: depth=0: out of range; allowed: an integer in 1..1000"
    ]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_single_run_and_a_diverging_job_inside_a_sweep(tmp_path: Path) -> None:
    proc = depthlab_run(*QUICK, f"hydra.run.dir={tmp_path / 'one'}", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert read_run(tmp_path / "one")["status"] == "ok"
    proc = depthlab_run(
        "-m",
        "lr=0.1,10000",
        "activation=relu",
        "init=gaussian",
        "init.sigma_w2=4",
        "depth=4",
        "width=32",
        "steps=200",
        "batch_size=32",
        f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "data=teacher",
        cwd=tmp_path,
    )
    assert proc.returncode == 0, proc.stderr
    statuses = [read_run(tmp_path / "sweep" / job)["status"] for job in ("0", "1")]
    assert statuses == ["ok", "diverged"]
    assert "diverged@" in proc.stdout


@pytest.mark.slow
def test_a_killed_run_leaves_readable_records(tmp_path: Path) -> None:
    run_dir = tmp_path / "killed"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "depthlab.run",
            "data=teacher",
            "steps=10000000",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 120
        # part 0 holds step 0; part 1 comes from a flush during training (every ~10 s)
        while len(list((run_dir / METRICS_DIR).glob("part-*.parquet"))) < 2:
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.2)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        proc.kill()
    assert read_run(run_dir)["status"] == "running"  # never claimed complete
    df = read_metrics(run_dir)
    assert {"loss", "test_loss"} <= set(df[df["step"] == 0]["metric"])
    trained = df[df["metric"] == "batch_loss"]["step"]
    assert trained.max() > 100 and list(trained) == list(range(len(trained)))  # no gaps


def pip(*args: str) -> subprocess.CompletedProcess:
    """``python -m pip ARGS`` quietly, its output captured."""
    command = [sys.executable, "-m", "pip", *args, "-q"]
    return subprocess.run(command, capture_output=True, text=True, timeout=300)


def build_and_install_wheel(root: Path, tmp_path: Path) -> tuple[list[str], Path]:
    """Build a wheel of ``root`` (no build isolation) and install it into a bare folder:
    (the wheel's file names, the folder)."""
    build = pip(
        "wheel", "--no-deps", "--no-build-isolation", "-w", str(tmp_path / "dist"), str(root)
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("depthlab-*.whl")
    site = tmp_path / "site"
    install = pip("install", "--no-deps", "--target", str(site), str(wheel))
    assert install.returncode == 0, install.stderr
    return zipfile.ZipFile(wheel).namelist(), site


@pytest.mark.slow
def test_regular_install_ships_conf_and_runs_anywhere(tmp_path: Path) -> None:
    """A wheel (not an editable install) carries conf/ and the app finds it from any folder."""
    root = Path(__file__).resolve().parents[1]
    names, site = build_and_install_wheel(root, tmp_path)
    assert "depthlab/conf/config.yaml" in names
    # every subpackage and every preset (an editable install elsewhere on the path could
    # otherwise hide a package missing from the wheel)
    src = root / "src"
    for init in [*src.glob("depthlab/**/__init__.py"), *src.glob("hydra_plugins/**/*.py")]:
        assert init.relative_to(src).as_posix() in names
    for preset in (root / "conf").glob("**/*.yaml"):
        assert f"depthlab/conf/{preset.relative_to(root / 'conf').as_posix()}" in names
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = subprocess.run(
        [sys.executable, "-c", "import depthlab; print(depthlab.__file__)"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
    )
    assert where.stdout.startswith(str(site))
    proc = depthlab_run(
        "steps=0", "data=teacher", f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, env=env
    )
    assert proc.returncode == 0, proc.stderr
    assert read_run(tmp_path / "run")["status"] == "ok"
    # the batched sweeper ships in the wheel: two seeds per depth train as one model
    sweep = tmp_path / "sweep"
    args = ("-m", "depth=1,2", "seed=0,1", "steps=2", "data=teacher", f"hydra.sweep.dir={sweep}")
    proc = depthlab_run(*args, cwd=tmp_path, env=env)
    assert proc.returncode == 0, proc.stderr
    assert [read_run(sweep / str(i))["batched_runs"] for i in range(4)] == [2] * 4


@pytest.mark.slow
def test_records_are_identical_across_processes(tmp_path: Path) -> None:
    """Same config and seed, two separate processes: the same records bit for bit."""
    frames = []
    for name in ("a", "b"):
        proc = depthlab_run(*QUICK, f"hydra.run.dir={tmp_path / name}", cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        frames.append(read_metrics(tmp_path / name).drop(columns="run_id"))
    pd.testing.assert_frame_equal(frames[0], frames[1], check_exact=True)


@pytest.mark.slow
def test_the_app_flushes_denormals_in_every_thread(tmp_path: Path) -> None:
    """Set once before any parallel op, the flag reaches every intra-op thread."""
    for flag, expected in (("true", 1.0), ("false", 0.0)):
        run_dir = tmp_path / flag
        proc = depthlab_run(
            "steps=0",
            "data=teacher",
            f"flush_denormal={flag}",
            f"hydra.run.dir={run_dir}",
            cwd=tmp_path,
        )
        assert proc.returncode == 0, proc.stderr
        assert read_run(run_dir)["denormals_flushed"] == expected


@pytest.mark.slow
def test_another_config_into_a_used_folder_sets_the_earlier_run_aside_whole(
    tmp_path: Path,
) -> None:
    """Hydra writes a job's files before the job starts: the earlier run's .hydra files and
    log are moved aside with its records, and an identical relaunch moves nothing."""
    sweep = f"hydra.sweep.dir={tmp_path / 'sweep'}"
    for args in (["depth=2,3", "steps=2"], ["depth=2,3", "steps=2"], ["depth=4,5", "steps=3"]):
        proc = depthlab_run("-m", sweep, *args, *QUICK[:2], cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        if args[1] == "steps=2":  # the first run, then the identical relaunch (resumed)
            assert not list(tmp_path.glob("sweep/**/.superseded"))
    old = tmp_path / "sweep" / ".superseded"
    (kept,) = old.iterdir()
    assert "depth=2,3" in (kept / "multirun.yaml").read_text()
    for job, depth in ((0, 2), (1, 3)):
        (aside,) = (tmp_path / "sweep" / str(job) / ".superseded").iterdir()
        assert f"depth: {depth}" in (aside / ".hydra" / "config.yaml").read_text()
        assert read_run(aside)["depth"] == depth and (aside / "run.log").exists()
        assert read_run(tmp_path / "sweep" / str(job))["depth"] == depth + 2
    run = f"hydra.run.dir={tmp_path / 'run'}"
    for steps in (2, 3):
        assert depthlab_run(run, f"steps={steps}", *QUICK[:2], cwd=tmp_path).returncode == 0
    (aside,) = (tmp_path / "run" / ".superseded").iterdir()
    assert "steps: 2" in (aside / ".hydra" / "config.yaml").read_text()
    assert "steps: 3" in (tmp_path / "run" / ".hydra" / "config.yaml").read_text()


# The console command `depthlab` (depthlab.console): its entry function in this process where
# it does not become another program (run, report), the installed script otherwise.
SCRIPT = Path(sys.executable).with_name("depthlab")


def depthlab(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    """``depthlab ARGS`` through the console script that ``pip install -e .`` makes."""
    assert SCRIPT.is_file(), f"no {SCRIPT}: reinstall (pip install -e '.[test]') for the script"
    command = [str(SCRIPT), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout)


def console(*args: str, capsys: pytest.CaptureFixture) -> tuple[int, str, str]:
    """(exit status, stdout, stderr) of ``depthlab ARGS`` run in this process."""
    from depthlab.console import main

    try:
        status = main(list(args))
    except SystemExit as exc:  # argparse's --help and its refusals
        status = int(exc.code or 0)
    out, err = capsys.readouterr()
    return status, out, err


def test_the_installed_script_and_every_level_have_help(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    top = depthlab("--help", cwd=tmp_path)
    assert top.returncode == 0, top.stderr
    for command in ("run", "report", "compare", "studies"):
        assert command in top.stdout
    for command, words in (("compare", "SWEEP_DIR"), ("studies", "NAME")):
        status, out, _ = console(command, "--help", capsys=capsys)
        assert status == 0 and words in out
    report = depthlab("report", "--help", cwd=tmp_path)  # the report's own help
    assert report.returncode == 0 and "--out" in report.stdout, report.stderr


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["bogus"], "error: unknown command 'bogus'; allowed: run, report, compare, studies"),
        (["studies", "nosuch"], "error: study=nosuch: unknown study; allowed: born_dead, "),
        (["compare", "one_sweep"], "error: compare needs two or more sweep folders, got 1"),
        (["--bogus"], "error: unrecognized arguments: --bogus"),
    ],
)
def test_a_refused_command_is_one_line_and_exit_2(
    args: list[str], start: str, capsys: pytest.CaptureFixture
) -> None:
    status, _, err = console(*args, capsys=capsys)
    assert status == 2
    assert err.startswith(start) and err.count("\n") == 1, err


@pytest.mark.slow
def test_run_help_describes_every_key_with_its_default_and_values(tmp_path: Path) -> None:
    """Every key of the composed config (groups' fields included, for the option chosen)
    has a line with its meaning, then its default and allowed values."""
    from hydra import compose, initialize_config_module
    from omegaconf import OmegaConf

    from depthlab.config import register_configs

    register_configs()
    choices = ["init=kaiming_normal", "data=teacher", "optimizer=adam"]
    with initialize_config_module("depthlab.conf", version_base="1.3"):
        cfg = OmegaConf.to_container(compose("config", overrides=choices))

    def keys(node: dict, prefix: str = "") -> list[str]:
        dotted = [f"{prefix}{k}" for k in node if k != "name"]
        inner = [keys(v, f"{prefix}{k}.") for k, v in node.items() if isinstance(v, dict)]
        return dotted + [k for group in inner for k in group]

    proc = depthlab("run", "--help", *choices, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    for key in keys(cfg):
        (at,) = [i for i, line in enumerate(lines) if line.split()[:1] == [key]]
        meaning = lines[at].split(maxsplit=1)[1:]
        assert meaning and meaning[0] != "(no description)", key
        assert lines[at + 1].strip().startswith("default ") and "; allowed: " in lines[at + 1]
    same = subprocess.run(
        [sys.executable, "-m", "depthlab.run", "--help", *choices],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert same.stdout == proc.stdout  # `depthlab run` is python -m depthlab.run


def test_studies_lists_all_fifteen_with_question_anchor_times_and_command(
    capsys: pytest.CaptureFixture,
) -> None:
    from depthlab.studies import STUDIES, STUDY_NAMES

    status, out, _ = console("studies", "--markdown", capsys=capsys)
    assert status == 0
    rows = [line for line in out.splitlines() if line.startswith("| ")][1:]
    assert len(STUDY_NAMES) == 15 and [r.split(" | ")[0][2:] for r in rows] == STUDY_NAMES
    for name, row in zip(STUDY_NAMES, rows, strict=True):
        cells = row.strip("| ").split(" | ")
        assert cells[1] == STUDIES[name].question.replace("|", "\\|")
        assert cells[1].endswith("?") and cells[2] == STUDIES[name].anchor
        assert cells[3].endswith((" s", " min")) and cells[4].endswith((" s", " min", " h"))
        assert cells[5] == f"`python -m depthlab.run -m +experiment={name}`"
    status, text, _ = console("studies", capsys=capsys)
    assert status == 0 and all(f"+experiment={name}" in text for name in STUDY_NAMES)


def test_studies_name_shows_files_that_exist(
    capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from depthlab.studies import STUDY_NAMES

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)
    for name in ("vanishing", "edge_of_chaos"):
        status, out, _ = console("studies", name, capsys=capsys)
        assert status == 0
        parts = dict(line.split(maxsplit=1) for line in out.split("\n\n", 1)[1].splitlines())
        assert parts["module"] == f"src/depthlab/studies/{name}.py"
        assert parts["analysis"] == f"analysis/{name}.py"
        assert parts["readme"] == f"experiments/{name}/README.md"
        assert parts["test"] == f"tests/test_study_{name}.py"
        assert parts["notebook"] == f"analysis/{name}.ipynb"
        assert all((root / path).exists() for path in parts.values())
    from depthlab.console.catalogue import parts_of

    for name in STUDY_NAMES:  # every part but the optional notebook, found from the name
        study = parts_of(name)
        assert all(
            path is not None and path.exists()
            for label, path in study.rows()
            if label != "notebook"
        ), name
        assert len(study.presets) >= 2


@pytest.mark.slow
def test_run_report_and_compare_through_the_console_command(tmp_path: Path) -> None:
    sweeps = []
    for name, depths in (("a", "1,2"), ("b", "3")):
        folder = tmp_path / name
        args = ("-m", f"depth={depths}", "steps=2", "data=teacher", f"hydra.sweep.dir={folder}")
        proc = depthlab("run", *args, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        assert (folder / "0" / "run.log").is_file()  # Hydra's job name: run, as with -m
        sweeps.append(str(folder))
    proc = depthlab("report", sweeps[0], cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "a" / "report.html").is_file()
    out = tmp_path / "both.html"
    proc = depthlab("compare", "--out", str(out), *sweeps, cwd=tmp_path)  # report's options
    assert proc.returncode == 0, proc.stderr
    assert out.is_file() and "b" in out.read_text()
