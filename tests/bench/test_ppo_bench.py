"""The PPO benchmark's side-by-side mode (``python -m qtg.bench.ppo --procs N``): what each
copy runs, and a count of processes the machine cannot give a core each refused with one
line and exit 2 before anything starts."""

from __future__ import annotations

import os

from qtg.bench import ppo


def test_each_copy_runs_the_same_arguments_without_procs():
    assert ppo.child_args(["--envs", "64", "256", "--procs", "2", "--updates", "3"]) == [
        "--envs", "64", "256", "--updates", "3"]
    assert ppo.child_args(["--procs=2", "--envs", "64"]) == ["--envs", "64"]
    assert ppo.child_args(["--envs", "64"]) == ["--envs", "64"]


def test_more_processes_than_cores_is_refused_with_one_line(capsys):
    cores = len(os.sched_getaffinity(0))
    assert ppo.main(["--procs", str(cores + 1)]) == 2
    assert ppo.main(["--procs", "0"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"--procs: {cores + 1}, must be 1..{cores} (the cores this process may use)",
                   f"--procs: 0, must be 1..{cores} (the cores this process may use)"]
