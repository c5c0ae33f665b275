"""Nothing a user types breaks a sweep: every bad command line ends in one line on stderr,
exit status 2 and no folder, before Hydra runs anything; a fuzz test draws command lines
and checks that rule."""

from __future__ import annotations

import os
import random
import re
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import numpy as np
import pytest
from helpers import hold

from depthlab import locks
from depthlab.cli import EXIT_BUSY, EXIT_USAGE, check_command_line
from depthlab.config import ALLOW_ENV
from depthlab.limits import LIMITS

QUICK = ["data=teacher", "width=8", "depth=2", "steps=4", "eval_every=2", "threads=1"]


def refusal(argv: list[str], folder: Path, capsys: pytest.CaptureFixture) -> tuple[int, str]:
    """(exit status, stderr) of checking ``argv`` with ``folder`` as the working folder;
    (0, '') when the command line is accepted."""
    cwd = Path.cwd()
    os.chdir(folder)
    try:
        check_command_line(argv)
    except SystemExit as exc:
        return int(exc.code), capsys.readouterr().err
    finally:
        os.chdir(cwd)
    return 0, capsys.readouterr().err


CASES = {
    "a probe schedule of 10^12 steps": ["steps=1000000000000"],
    "a layer of 10^9 units": ["width=1000000000", "depth=1"],
    "a net too big for any device": ["width=65536", "depth=1000"],
    "1024 replicas of a 1000-layer net": ["replicas=1024", "depth=1000", "width=1024"],
    "a data set of 10^9 samples": ["data.num_samples=1000000000"],
    "more threads than cores": [f"threads={(os.cpu_count() or 1) + 1}"],
    "an overflowing learning rate": ["lr=1e308"],
    "an overflowing gain": ["init=orthogonal", "init.gain=1e300"],
    "a split with no training set": ["data=digits", "data.test_fraction=0.999"],
    "a key given twice": ["depth=3", "depth=4"],
    "an environment variable in a record": ["study=${oc.env:HOME}"],
    "Hydra's pickle rerun": ["--experimental-rerun", "config.pickle"],
    "NaN as a learning rate": ["lr=nan"],
    "a negative seed": ["seed=-1"],
    "an npz file that does not exist": ["data=npz", "data.path=missing.npz"],
    "a sweep with one bad value": ["-m", "depth=3,4", "lr=0.1,1e9"],
    "a subnormal learning rate": ["lr=1e-320"],
    "a teacher too big to make": ["data=teacher", "data.width=65536", "data.depth=1000"],
    "a sweep of no jobs": ["-m", "depth=range(5,1)"],
    "a sweep of 10^9 jobs": ["-m", "seed=range(0,1000000000)"],
    "every job in one folder": ["-m", "depth=2,3", "hydra.sweep.subdir=same"],
    "a missing --config-dir": ["--config-dir=/nonexistent/conf", "depth=2"],
    "a bad value with -cp": ["-cp", "pkg://depthlab.conf", "depth=0"],
    "a folder name the system refuses": [f"hydra.run.dir={'x' * 300}/run"],
    "a group option that is a number": ["data=0"],
    "an override without a key": ["=3"],
    "a renamed init": ["init=fixup", "residual=true"],
}


@pytest.mark.parametrize("argv", CASES.values(), ids=CASES.keys())
def test_bad_input_is_one_line_exit_2_and_nothing_written(
    argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    status, err = refusal(argv, tmp_path, capsys)
    assert status == EXIT_USAGE
    assert err.count("\n") == 1 and err.startswith("error: "), err
    assert list(tmp_path.iterdir()) == []


def test_a_renamed_option_says_its_new_name_and_why(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    status, err = refusal(["init=fixup", "residual=true"], tmp_path, capsys)
    assert status == EXIT_USAGE
    assert err.startswith("error: init=fixup: renamed scaled_branches: it scales residual")
    assert "not Fixup" in err


def test_environment_variables_reach_records_only_when_asked(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    sweep = f"hydra.sweep.dir={tmp_path}/${{oc.env:USER,me}}"
    assert refusal(["-m", sweep, "depth=2,3"], tmp_path, capsys) == (0, "")  # where: fine
    status, err = refusal(["data=npz", "data.path=${oc.env:HOME}/x.npz"], tmp_path, capsys)
    assert status == EXIT_USAGE and err.startswith("error: data.path=${oc.env:HOME}/x.npz: ")
    monkeypatch.setenv(ALLOW_ENV, "1")
    assert refusal(["study=${oc.env:HOME}"], tmp_path, capsys) == (0, "")


def test_a_relative_npz_path_that_a_job_would_leave_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)), np.arange(40) % 2
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y, x_test=x, y_test=y)
    argv = ["data=npz", "data.path=d.npz", "hydra.job.chdir=true", "hydra.run.dir=out"]
    status, err = refusal(argv, tmp_path, capsys)
    assert status == EXIT_USAGE and err.startswith("error: data.path=d.npz: relative to")
    assert refusal(argv[:2] + argv[3:], tmp_path, capsys) == (0, "")  # without chdir: fine


def test_a_writer_that_finishes_within_lock_timeout_is_waited_for(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    holder = hold(tmp_path / "run", 1.0)
    argv = [f"hydra.run.dir={tmp_path / 'run'}", "lock_timeout=30"]
    assert refusal(argv, tmp_path, capsys) == (0, "")
    holder.wait()


def test_an_output_folder_that_is_a_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    (tmp_path / "taken").write_text("precious")
    status, err = refusal([f"hydra.run.dir={tmp_path / 'taken'}"], tmp_path, capsys)
    assert status == EXIT_USAGE and "a file is in the way" in err and err.count("\n") == 1
    assert (tmp_path / "taken").read_text() == "precious"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in any folder")
def test_a_folder_without_write_permission_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    locked = tmp_path / "ro"
    locked.mkdir(mode=0o555)
    status, err = refusal([f"hydra.run.dir={locked}/run"], tmp_path, capsys)
    assert status == EXIT_USAGE and "is not writable" in err


def test_a_disk_without_room_for_the_records_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 5000, 5000))
    status, err = refusal([f"hydra.run.dir={tmp_path}/run"], tmp_path, capsys)
    assert status == EXIT_USAGE and "too little free disk" in err and "5 kB free" in err
    assert not (tmp_path / "run").exists()


def test_a_folder_another_process_writes_is_refused_before_hydra_writes(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    run_dir = tmp_path / "sweep" / "0"
    with locks.locked([run_dir]):  # a lock held by another open file: as another process's
        before = sorted(p.name for p in run_dir.iterdir())
        status, err = refusal(
            ["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", "depth=2,3"], tmp_path, capsys
        )
        assert status == EXIT_BUSY and f"process {os.getpid()}" in err and str(run_dir) in err
        assert sorted(p.name for p in run_dir.iterdir()) == before
        args = ["-m", f"hydra.sweep.dir={tmp_path / 'sweep'}", "depth=2,3", "lock_timeout=1"]
        assert refusal(args, tmp_path, capsys)[0] == EXIT_BUSY  # waited a second: still held


# The fuzz test's vocabulary: every numeric key, the named choices, and hostile values.
CHOICES = {
    "activation": ["relu", "tanh", "sigmoid", "swish", ""],
    "norm": ["none", "batchnorm", "groupnorm"],
    "device": ["cpu", "auto", "tpu"],
    "dtype": ["float32", "float64", "float16"],
    "data": ["teacher", "quadratic", "digits", "mnist1d", "npz", "imagenet"],
    "init": ["gaussian", "orthogonal", "xavier_normal", "scaled_branches", "zeros"],
    "optimizer": ["sgd", "momentum", "adam", "lbfgs"],
    "probes": ["none", "minimal", "default", "full", "all"],
    "residual": ["true", "false", "maybe"],
    "loss": ["auto", "squared", "cross_entropy", "hinge"],
}
HOSTILE = ["0", "-1", "1e308", "-1e308", "nan", "inf", "abc", "''", "10" * 20, "1e-320", "[1,2]"]


def draw_command_line(rng: random.Random) -> list[str]:
    """A random command line: a few keys with extreme, wrong-typed or unknown values over a
    tiny base run, now and then a key twice or a malformed or unknown key."""
    chosen = dict(line.split("=") for line in QUICK)
    for _ in range(rng.randint(1, 4)):
        if rng.random() < 0.6:
            key = rng.choice(sorted(LIMITS))
            limit = LIMITS[key]
            group = key.partition(".")[0]
            if group in CHOICES and rng.random() < 0.7:
                chosen[group] = rng.choice(CHOICES[group])
            values = [repr(limit.high), repr(limit.low), repr(limit.high * 2 + 1)]
            chosen[key] = rng.choice([*HOSTILE, *values, *values])
        else:
            key = rng.choice(sorted(CHOICES))
            chosen[key] = rng.choice(CHOICES[key] + HOSTILE[:3])
    argv = [f"{key}={value}" for key, value in chosen.items()]
    if rng.random() < 0.15:
        argv.append(rng.choice(["dept=3", "+foo=1", "depth=3", "width=", "=3", "depth==3"]))
    return argv


def test_fuzzed_command_lines_are_accepted_or_refused_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    rng = random.Random(12)
    outcomes = {}
    for i in range(150):
        argv = draw_command_line(rng)
        folder = tmp_path / str(i)
        folder.mkdir()
        status, err = refusal([f"hydra.run.dir={folder}/run", *argv], folder, capsys)
        assert status in (0, EXIT_USAGE), (argv, status, err)
        if status:  # one line that starts with the key it is about
            assert err.count("\n") == 1 and re.match(r"error: ([\w.]+=|cannot parse)", err), (
                argv,
                err,
            )
        else:
            assert err == "", (argv, err)
        assert list(folder.iterdir()) == [], argv  # checking never writes
        outcomes[" ".join(argv)] = status
    refused = sum(1 for s in outcomes.values() if s)
    assert 30 < refused < len(outcomes)  # the draw covers both sides


@pytest.mark.slow
def test_accepted_fuzzed_command_lines_end_ok_or_diverged(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """Run the accepted ones (a sample) for real: one line and exit 2, or records."""
    rng = random.Random(12)
    accepted = []
    for _ in range(150):
        argv = draw_command_line(rng)
        if refusal(argv, tmp_path, capsys)[0] == 0:
            accepted.append(argv)
    from depthlab.results import load_sweep

    for i, argv in enumerate(accepted[:6]):
        proc = subprocess.run(
            [sys.executable, "-m", "depthlab.run", f"hydra.run.dir={tmp_path}/{i}", *argv],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode == EXIT_USAGE:  # data that fail their checks at load
            assert proc.stderr.count("\n") == 1, (argv, proc.stderr)
            continue
        assert proc.returncode == 0, (argv, proc.stderr[-2000:])
        statuses = load_sweep(tmp_path / str(i)).runs["status"]
        assert set(statuses) <= {"ok", "diverged"}, argv
    assert np.isfinite(len(accepted))
