"""``--executor slurm`` against a real single-node SLURM started on this machine
(``tests/slurm_cluster.sh``: munged, MariaDB + slurmdbd, slurmctld, slurmd), and its bad
input, which needs no cluster. The cluster tests skip, saying why, where the packages
(Debian's slurm-wlm, munge, mariadb-server, slurmdbd; ``.ci/run`` installs them) are absent
or the tests do not run as root (the daemons are started by hand)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from conftest import write_micro_grid, write_small_sets

from srlib import ablate, runs, sbatch, slurm

SCRIPT = Path(__file__).with_name("slurm_cluster.sh")
DAEMONS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd")
CLIENTS = ("sbatch", "squeue", "sacct", "scontrol", "scancel", "sinfo")


@pytest.fixture(scope="module")
def cluster():
    """The test cluster for this module's tests, stopped after them; ``SLURM_CONF`` set."""
    missing = [p for p in DAEMONS + CLIENTS
               if shutil.which(p) is None and not Path("/usr/sbin", p).exists()]
    if missing:
        pytest.skip(f"SLURM is not installed here (no {', '.join(missing)}): .ci/run installs "
                    "slurm-wlm munge mariadb-server slurmdbd with apt-get")
    if os.geteuid() != 0:
        pytest.skip("the test cluster's daemons are started by hand, which needs root")
    # not under pytest's tmp: its 0700 parents would keep MariaDB's user out
    state = Path(tempfile.mkdtemp(prefix="srlib-slurm-"))
    state.chmod(0o755)
    started = subprocess.run(["bash", str(SCRIPT), "start", str(state)], capture_output=True,
                             text=True, timeout=300)
    mp = pytest.MonkeyPatch()
    mp.setenv("SLURM_CONF", str(state / "etc" / "slurm.conf"))
    try:
        if started.returncode != 0:
            pytest.fail(f"the test cluster did not start:\n{started.stdout}\n{started.stderr}")
        yield state
    finally:
        subprocess.run(["scancel", "--user", "root"], capture_output=True, timeout=60)
        subprocess.run(["bash", str(SCRIPT), "stop", str(state)], capture_output=True,
                       timeout=120)
        mp.undo()
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
def fast_poll(monkeypatch):
    monkeypatch.setattr(ablate, "POLL_S", 1.0)


def states(*ids: str) -> dict[str, str]:
    return slurm.job_states(list(ids))[0]


def wait_for(what, timeout: float = 240.0, every: float = 1.0):
    """Poll ``what()`` until it returns something true; fail after ``timeout`` seconds."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        got = what()
        if got:
            return got
        time.sleep(every)
    pytest.fail(f"still waiting after {timeout:.0f} s: {what.__doc__ or what}")


def long_grid(root: Path, seeds: list[int], iters: int, **slurm_section) -> Path:
    """One trained variant, long enough to be caught running."""
    train, test = write_small_sets(root)
    grid = {"name": "long", "seeds": seeds,
            "defaults": {"preset": "quick", "iters": iters, "batch": 2, "patch": 16, "nf": 8,
                         "nb": 1, "gc": 4, "log_every": 10, "ckpt_every": 100000,
                         "device": "cpu", "data": train, "test_data": [test],
                         "eval_lpips": False},
            "variants": {"down/ps": {"loss": "down", "upsampler": "pixelshuffle"}}}
    if slurm_section:
        grid["slurm"] = slurm_section
    path = root / "long.yaml"
    path.write_text(yaml.safe_dump(grid))
    return path


def trained_rows(d: Path) -> int:
    """Rows in losses.csv: training has started."""
    p = d / runs.LOSSES
    return len(p.read_text().splitlines()) - 1 if p.is_file() else 0


# ---- against the cluster --------------------------------------------------------------------

METRIC_COLUMNS = ["psnr_y", "ssim_y", "lpips", "lr_psnr", "lr_psnr_ntire", "range_mse",
                  "null_mse", "lr_psnr_raw", "clipped", "null_gain_db", "range_gain_db"]


def test_micro_grid_on_slurm_gives_the_local_numbers(cluster, fast_poll, tmp_path, capsys):
    cfg = write_micro_grid(tmp_path)
    grid = yaml.safe_load(cfg.read_text())
    grid["variants"]["ft"] = {"loss": "down", "upsampler": "pixelshuffle", "iters": 2,
                              "init_from": "pixel/pixelshuffle"}
    grid["variants"]["ft-broken"] = {"loss": "down", "upsampler": "pixelshuffle",
                                     "iters": 2, "init_from": "broken"}
    cfg.write_text(yaml.safe_dump(grid))
    assert ablate.main([str(cfg), "--out", str(tmp_path / "local")]) == 0
    assert ablate.main([str(cfg), "--out", str(tmp_path / "slurm"), "--executor", "slurm",
                        "--wait"]) == 0
    printed = capsys.readouterr().out
    local, on_slurm = (pd.read_csv(tmp_path / o / "results.csv", keep_default_na=False)
                       .set_index(["variant", "dataset"]).sort_index()
                       for o in ("local", "slurm"))
    assert list(local.index) == list(on_slurm.index)
    assert list(local.status) == list(on_slurm.status)
    # the same unit of work, one thread each (local: 2 runs on 2 cores; SLURM: cpus 1)
    a = local[METRIC_COLUMNS].apply(pd.to_numeric, errors="coerce")
    b = on_slurm[METRIC_COLUMNS].apply(pd.to_numeric, errors="coerce")
    diff = (a - b).abs().max().max()
    assert diff == 0, f"SLURM and local differ by up to {diff}"
    assert a.notna().any().any()
    # a failed job: its last line in results.csv and its whole text in the run folder
    broken = runs.run_dir(tmp_path / "slurm", "broken", 0)
    assert on_slurm.loc["broken"].status.iloc[0] == "failed"
    assert on_slurm.loc["broken"].error.iloc[0] == local.loc["broken"].error.iloc[0]
    assert "no training image is at least 4096x4096" in (broken / runs.TRACEBACK).read_text()
    # a fine-tune of a failed source: SLURM cancelled its job; the row says why, as locally
    for table in (local, on_slurm):
        assert table.loc["ft-broken"].status.iloc[0] == "not run"
        assert table.loc["ft-broken"].error.iloc[0] == "its source broken seed 0 failed"
    # the fine-tune waited for its source: afterok, and started after it ended
    src_job = slurm.recorded_job(runs.run_dir(tmp_path / "slurm", "pixel/pixelshuffle", 0))
    ft = runs.run_dir(tmp_path / "slurm", "ft", 0)
    assert runs.read_json(ft / slurm.JOB)["after"] == src_job
    assert f"(after job {src_job})" in printed
    times = subprocess.run(["sacct", "-X", "-n", "-P", "-o", "JobIDRaw,Start,End", "-j",
                            f"{src_job},{slurm.recorded_job(ft)}"], capture_output=True,
                           text=True, check=True).stdout.split()
    when = {row.split("|")[0]: row.split("|")[1:] for row in times}
    assert when[slurm.recorded_job(ft)][0] >= when[src_job][1]  # ISO times sort as text
    assert (tmp_path / "slurm" / "index.html").is_file()


def test_a_second_invocation_submits_nothing_while_jobs_are_queued(cluster, tmp_path,
                                                                   capsys):
    # --begin keeps the job queued for an hour (and tests extra sbatch options)
    cfg = long_grid(tmp_path, [0], 20, extra=["--begin=now+3600"])
    cmd = [str(cfg), "--out", str(tmp_path / "out"), "--executor", "slurm"]
    assert ablate.main(cmd) == 0
    d = runs.run_dir(tmp_path / "out", "down/ps", 0)
    job = slurm.recorded_job(d)
    assert f"submitted as job {job}" in capsys.readouterr().out
    try:
        assert ablate.main(cmd) == 0
        out = capsys.readouterr().out
        assert f"down/ps seed 0: job {job} PENDING" in out and "submitted" not in out
        assert slurm.recorded_job(d) == job
        listed = subprocess.run(["squeue", "-h", "-n", "down/ps/seed0", "-o", "%i"],
                                capture_output=True, text=True, check=True).stdout.split()
        assert listed == [job]
        # --force does not race a live job
        assert ablate.main([*cmd, "--force"]) == 0
        assert f"NOT RUN (--force: job {job} is PENDING; `scancel {job}` first)" in \
            capsys.readouterr().out
        assert not (tmp_path / "out" / "index.html").exists()  # no report while one is live
    finally:
        subprocess.run(["scancel", job], check=True)


def test_scancel_then_the_same_command_reports_and_resubmits(cluster, tmp_path, capsys):
    cfg = long_grid(tmp_path, [0], 100000)
    cmd = [str(cfg), "--out", str(tmp_path / "out"), "--executor", "slurm"]
    assert ablate.main(cmd) == 0
    d = runs.run_dir(tmp_path / "out", "down/ps", 0)
    job = slurm.recorded_job(d)
    wait_for(lambda: trained_rows(d) > 0)
    subprocess.run(["scancel", job], check=True)
    wait_for(lambda: states(job)[job] == "CANCELLED")
    capsys.readouterr()
    assert ablate.main(cmd) == 0
    out = capsys.readouterr().out
    new = slurm.recorded_job(d)
    try:
        assert new != job
        assert re.search(rf"down/ps seed 0: job {job} CANCELLED \(slurm job {job} ended "
                         rf"CANCELLED before the run finished\); submitted as job {new}", out)
        assert states(new)[new] in slurm.LIVE
    finally:
        subprocess.run(["scancel", new], check=True)


def test_a_run_that_keeps_failing_is_resubmitted_then_given_up(cluster, tmp_path, capsys,
                                                               monkeypatch):
    monkeypatch.setattr(ablate, "MAX_FAILURES", 2)
    cfg = long_grid(tmp_path, [0], 4)
    grid = yaml.safe_load(cfg.read_text())
    grid["variants"]["down/ps"]["patch"] = 4096  # valid, fails when it runs
    cfg.write_text(yaml.safe_dump(grid))
    cmd = [str(cfg), "--out", str(tmp_path / "out"), "--executor", "slurm"]
    d = runs.run_dir(tmp_path / "out", "down/ps", 0)
    assert ablate.main(cmd) == 0
    first = slurm.recorded_job(d)
    wait_for(lambda: states(first)[first] == "FAILED")
    assert ablate.main(cmd) == 0  # failed once: resubmitted
    second = slurm.recorded_job(d)
    assert re.search(rf"job {first} FAILED \(ValueError: no training image is .*\); submitted "
                     rf"as job {second}", capsys.readouterr().out)
    wait_for(lambda: states(second)[second] == "FAILED")
    assert ablate.main(cmd) == 0  # twice in a row: given up, and the report is built
    assert f"job {second} FAILED" in (out := capsys.readouterr().out)
    assert "not resubmitted: its last 2 jobs ended before it finished" in out
    assert slurm.recorded_job(d) == second and (tmp_path / "out" / "index.html").is_file()
    row = pd.read_csv(tmp_path / "out" / "results.csv", keep_default_na=False).iloc[0]
    assert row.status == "failed" and "no training image is at least 4096" in row.error


def test_requeue_and_preemption_resume_from_their_checkpoints(cluster, tmp_path, capsys):
    cfg = long_grid(tmp_path, [0, 1], 300)
    cmd = [str(cfg), "--out", str(tmp_path / "out"), "--executor", "slurm"]
    assert ablate.main(cmd) == 0
    d0, d1 = (runs.run_dir(tmp_path / "out", "down/ps", s) for s in (0, 1))
    j0, j1 = slurm.recorded_job(d0), slurm.recorded_job(d1)
    wait_for(lambda: trained_rows(d0) > 0 and trained_rows(d1) > 0)
    subprocess.run(["scontrol", "requeue", j0], check=True)  # SIGTERM, then requeued
    # what SLURM sends, through submitit's --signal, before a preemption or the time limit:
    # submitit's handler has the kernel save a checkpoint, then requeues the job itself
    subprocess.run(["scancel", "--signal=USR2", j1], check=True)
    wait_for(lambda: all(s == "PENDING" for s in states(j0, j1).values()))
    for job in (j0, j1):  # SLURM holds a requeued job about 2 minutes: start it now
        subprocess.run(["scontrol", "update", f"JobId={job}", "StartTime=now"], check=True)
    wait_for(lambda: set(states(j0, j1).values()) == {"COMPLETED"}, timeout=300)
    for d, job in ((d0, j0), (d1, j1)):
        m = runs.read_metrics(d)
        assert m["resumed_from_iter"] > 0 and m["iters"] == 300
        assert slurm.recorded_job(d) == job  # requeued, not resubmitted
    assert "Caught signal SIGUSR2" in (d1 / slurm.JOBS / f"{j1}_0_log.err").read_text()
    assert ablate.main(cmd) == 0  # nothing live: the next invocation builds the report
    assert "down/ps seed 1: finished earlier, skipped" in capsys.readouterr().out
    assert (tmp_path / "out" / "index.html").is_file()


def test_gpus_beyond_the_partition_are_refused(cluster, tmp_path, capsys):
    cfg = write_micro_grid(tmp_path)
    for option, says in (("gpus=1", "a job asks for 1 GPU(s) but the nodes of the default "
                                    "partition have at most 0"),
                         ("partition=nosuch", "'nosuch' is not a partition of this cluster")):
        assert ablate.main([str(cfg), "--out", str(tmp_path / "o"), "--executor", "slurm",
                            "--slurm", option]) == 2
        assert says in capsys.readouterr().err
    grid = yaml.safe_load(cfg.read_text())  # a variant's gpus: N asks N of one job
    grid["variants"]["down/pixelshuffle"]["gpus"] = 2
    cfg.write_text(yaml.safe_dump(grid))
    assert ablate.main([str(cfg), "--out", str(tmp_path / "o"), "--executor", "slurm"]) == 2
    assert "a job asks for 2 GPU(s) but the nodes of the default partition have at most 0" \
        in capsys.readouterr().err
    assert not (tmp_path / "o" / "runs").exists()


# ---- bad input, before anything is submitted ----------------------------------------------

def refused(tmp_path, capsys, args: list[str], grid_slurm: dict | None = None) -> str:
    cfg = write_micro_grid(tmp_path)
    if grid_slurm is not None:
        grid = yaml.safe_load(cfg.read_text())
        grid["slurm"] = grid_slurm
        cfg.write_text(yaml.safe_dump(grid))
    assert ablate.main([str(cfg), "--out", str(tmp_path / "o"), *args]) == 2
    assert not (tmp_path / "o" / "runs").exists()
    return capsys.readouterr().err


def test_an_unknown_executor_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        ablate.parse_args([str(tmp_path / "g.yaml"), "--executor", "kubernetes"])
    assert e.value.code == 2
    assert "--executor: invalid choice: 'kubernetes'" in capsys.readouterr().err


def test_without_submitit_or_sbatch_slurm_is_refused(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "submitit", None)
    assert "the Python package submitit is not installed" in \
        refused(tmp_path / "a", capsys, ["--executor", "slurm"])
    monkeypatch.delitem(sys.modules, "submitit")
    monkeypatch.setenv("PATH", str(tmp_path))  # no sbatch there
    assert "`sbatch` is not found on the PATH" in \
        refused(tmp_path / "b", capsys, ["--executor", "slurm"])


@pytest.mark.parametrize(("section", "args", "says"), [
    ({"partion": "gpu"}, [], r"micro.yaml:\d+: slurm: key must be one of partition, .*got "
                             r"'partion' \(did you mean 'partition'"),
    ({"time": -5}, [], r"slurm: time: expected minutes .* got -5"),
    ({"mem": "lots"}, [], r"slurm: mem: expected memory per job .* got 'lots'"),
    ({"extra": ["exclusive"]}, [], r"slurm: extra: expected a list of sbatch options"),
    (None, ["--slurm", "gpus"], r"--slurm gpus: expected KEY=VALUE"),
    (None, ["--slurm", "cpus=0"], r"slurm .*: cpus: expected CPUs per job \(an integer >= 1\), "
                                  r"got 0"),
    (None, ["--slurm", "nodes=2"], r"key must be one of .*got 'nodes'"),
    # a newline would end the #SBATCH line: sbatch ignores every #SBATCH after it
    ({"account": "lab\n#SBATCH --qos=high"}, [], r"slurm: account: expected an account name "
                                                 r"\(one line, no control character\)"),
    ({"partition": "gpu\rx"}, [], r"slurm: partition: expected a partition name \(one line"),
    (None, ["--slurm", "constraint=a\tb"], r"constraint: expected a node feature expression"),
    # what the executor sets itself: a fine-tune's afterok, the requeue, the log files
    ({"extra": ["--dependency=afterany:1"]}, [], r"none of those the executor sets itself "
                                                 r"\(--dependency, --requeue"),
    ({"extra": ["--output=/tmp/x.log"]}, [], r"extra: expected .*got \['--output=/tmp/x.log'\]"),
    ({"time": "0:0"}, [], r"slurm: time: .* of at least a minute, got '0:0'"),
    ({"time": "0:30"}, [], r"of at least a minute, got '0:30'"),
])
def test_bad_slurm_settings_are_refused(tmp_path, capsys, section, args, says):
    err = refused(tmp_path, capsys, ["--executor", "slurm", *args], section)
    assert re.search(says, err), err


@pytest.mark.parametrize(("args", "says"), [
    (["--executor", "slurm", "--jobs", "2"], "--jobs applies to --executor local only"),
    (["--executor", "slurm", "--gpus", "0"], "--gpus applies to --executor local only"),
    (["--wait"], "--wait applies to --executor slurm only"),
    (["--slurm", "time=10"], "--slurm applies to --executor slurm only"),
])
def test_options_of_the_other_executor_are_refused(tmp_path, capsys, args, says):
    assert says in refused(tmp_path, capsys, args)


def test_settings_and_time_limits(tmp_path):
    s = sbatch.check_settings({"time": "1-02:03:04", "gpus": 2, "extra": ["--exclusive"]})
    assert s["cpus"] == 1 and sbatch.minutes(s["time"]) == (26 * 60 + 3) + 1
    # sbatch --time's formats: M, M:S, H:M:S, D-H, D-H:M, D-H:M:S
    assert [sbatch.minutes(t) for t in ("30", "30:00", "90:30", "12:00:00", "1-12",
                                       "1-12:30", 90)] == [30, 30, 91, 720, 2160, 2190, 90]
    assert sbatch.parse_options(["time=120", "extra=[--exclusive, --begin=now]",
                                "time=12:00:00"]) == \
        {"time": "12:00:00", "extra": ["--exclusive", "--begin=now"]}
    # unquoted in a grid, YAML 1.1 reads 12:00:00 as 43200 (base 60): kept as written
    from srlib.grid import load_grid

    (tmp_path / "g.yaml").write_text("variants:\n  a: {loss: down}\nslurm:\n  time: 12:00:00\n")
    assert load_grid(tmp_path / "g.yaml")["slurm"]["time"] == "12:00:00"
    assert slurm._gpus("gpu:a100:4(S:0-1),gpu:2") == 6 and slurm._gpus("(null)") == 0


def test_held_and_requeued_states_are_live():
    for state in ("RESV_DEL_HOLD", "REQUEUE_HOLD", "REQUEUE_FED", "PENDING", "SPECIAL_EXIT",
                  "SOME_NEW_HOLD", "REQUEUE_CRON"):
        assert slurm.is_live(state), state
    for state in ("COMPLETED", "FAILED", "CANCELLED by 0", "TIMEOUT", "ENDED", ""):
        assert not slurm.is_live(state), state


def test_without_accounting_states_come_from_squeue(monkeypatch):
    """sacct failing (accounting off): squeue's states for queued and running jobs, ENDED
    for a job it does not list."""
    def call(cmd):
        if cmd[0] == "sacct":
            raise ValueError("`sacct` failed: Slurm accounting storage is disabled")
        return "11|RUNNING\n12|PENDING\n"
    monkeypatch.setattr(slurm, "_call", call)
    states, source = slurm.job_states(["11", "12", "13"])
    assert states == {"11": "RUNNING", "12": "PENDING", "13": "ENDED"}
    assert source.startswith("squeue")


def _fake_slurm(tmp_path, monkeypatch, sinfo: str, srun: bool = True) -> None:
    """sbatch, sinfo (printing ``sinfo``) and perhaps srun as scripts on the PATH."""
    bin_ = tmp_path / "bin"
    bin_.mkdir(parents=True)
    tools = {"sbatch": "", "sinfo": f"printf '{sinfo}'", **({"srun": ""} if srun else {})}
    for name, body in tools.items():
        (bin_ / name).write_text(f"#!/bin/sh\n{body}\n")
        (bin_ / name).chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_))  # printf is the shell's own


def test_a_time_above_the_partitions_limit_and_a_missing_srun_are_refused(tmp_path,
                                                                          monkeypatch):
    _fake_slurm(tmp_path, monkeypatch, "debug*|gpu:4|2:00:00\\nlong|(null)|infinite\\n")
    slurm.check_cluster({"time": 120})  # at the limit
    with pytest.raises(ValueError, match=r"slurm: time: 3:00:00 is more than the default "
                                         r"partition's limit of 120 minutes"):
        slurm.check_cluster({"time": "3:00:00"})
    slurm.check_cluster({"time": "7-00:00:00", "partition": "long"})  # no limit
    slurm.check_cluster({"time": 60}, gpus_needed=2)
    _fake_slurm(tmp_path / "x", monkeypatch, "debug*|gpu:4|infinite\\n", srun=False)
    with pytest.raises(ValueError, match=r"gpus: N > 1 starts its ranks with `srun`, which "
                                         r"is not found on the PATH"):
        slurm.check_cluster({"time": 60}, gpus_needed=2)
    slurm.check_cluster({"time": 60})  # one rank: no srun needed
