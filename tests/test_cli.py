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


@pytest.mark.slow
def test_regular_install_ships_conf_and_runs_anywhere(tmp_path: Path) -> None:
    """A wheel (not an editable install) carries conf/ and the app finds it from any folder."""
    root = Path(__file__).resolve().parents[1]
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path / "dist"),
            str(root),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = (tmp_path / "dist").glob("depthlab-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "depthlab/conf/config.yaml" in names
    # every subpackage and every preset (an editable install elsewhere on the path could
    # otherwise hide a package missing from the wheel)
    src = root / "src"
    for init in [*src.glob("depthlab/**/__init__.py"), *src.glob("hydra_plugins/**/*.py")]:
        assert init.relative_to(src).as_posix() in names
    for preset in (root / "conf").glob("**/*.yaml"):
        assert f"depthlab/conf/{preset.relative_to(root / 'conf').as_posix()}" in names
    site = tmp_path / "site"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--no-deps",
            "-q",
            "--target",
            str(site),
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr
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
