"""The folder lock on file systems where ``flock`` fails or locks nothing (Lustre, NFS
mounted ``nolock``): the ``O_EXCL`` owner file alone must keep a second writer out."""

from __future__ import annotations

import errno
import fcntl
import os
import socket
import subprocess
import sys

import pytest

from srlib import runs


@pytest.fixture(autouse=True)
def outside_slurm(monkeypatch):
    """Owner lines as outside a SLURM job (the tests may run inside one)."""
    monkeypatch.delenv("SLURM_JOB_ID", raising=False)
    monkeypatch.delenv("SLURM_RESTART_COUNT", raising=False)


@pytest.fixture
def no_flock(monkeypatch):
    """flock as Lustre answers it without the flock mount option."""
    def refuse(fd, op):
        raise OSError(errno.ENOSYS, "Function not implemented")
    monkeypatch.setattr(fcntl, "flock", refuse)


@pytest.fixture
def flock_does_nothing(monkeypatch):
    """flock as NFS mounted nolock answers it: every lock granted, none held."""
    monkeypatch.setattr(fcntl, "flock", lambda fd, op: None)


@pytest.mark.parametrize("fs", ["no_flock", "flock_does_nothing"])
def test_the_owner_file_keeps_a_second_holder_out(fs, request, tmp_path):
    request.getfixturevalue(fs)
    with runs.locked(tmp_path / "run", "run folder"):
        owner = (tmp_path / "run" / runs.OWNER).read_text()
        assert owner.startswith(f"host {socket.gethostname()} pid {os.getpid()} since ")
        again = r"run folder .*run is in use by host " \
            rf"{socket.gethostname()} pid {os.getpid()} since .*remove "
        with pytest.raises(runs.RunLocked, match=again), \
                runs.locked(tmp_path / "run", "run folder"):
            pass
    assert not (tmp_path / "run" / runs.OWNER).exists()  # released at the end
    with runs.locked(tmp_path / "run"):  # and free again
        pass


def _dead_pid() -> int:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def test_a_stale_owner_on_this_host_is_taken_over(no_flock, tmp_path):
    """A killed holder leaves its owner file; on the same host, once its pid no longer
    runs, the next holder takes it over."""
    (tmp_path / "run").mkdir()
    stale = f"host {socket.gethostname()} pid {_dead_pid()} since 2026-01-01 00:00:00"
    (tmp_path / "run" / runs.OWNER).write_text(stale)
    with runs.locked(tmp_path / "run"):
        assert f"pid {os.getpid()} " in (tmp_path / "run" / runs.OWNER).read_text()


def test_an_owner_on_another_host_is_never_taken_over(no_flock, tmp_path):
    """A holder on another host cannot be checked from here: refused, and the message
    names the file to remove if that process is gone."""
    (tmp_path / "run").mkdir()
    other = "host node-017 pid 4242 since 2026-01-01 00:00:00"
    (tmp_path / "run" / runs.OWNER).write_text(other)
    with pytest.raises(runs.RunLocked, match=r"in use by host node-017 pid 4242 .*if that "
                       r"process is gone, remove .*\.lock\.owner"), runs.locked(tmp_path / "run"):
        pass
    assert (tmp_path / "run" / runs.OWNER).read_text() == other  # left as it was


def test_a_requeued_job_takes_over_its_earlier_incarnation(no_flock, tmp_path, monkeypatch):
    """SLURM ends a job before it requeues it, perhaps onto another node: the owner file
    of the same job id with another restart count is stale; another job's is not."""
    run = tmp_path / "run"
    run.mkdir()
    monkeypatch.setenv("SLURM_JOB_ID", "77")
    monkeypatch.setenv("SLURM_RESTART_COUNT", "1")
    (run / runs.OWNER).write_text("host node-017 pid 4242 job 77.0 since 2026-01-01 00:00:00")
    with runs.locked(run):
        assert (run / runs.OWNER).read_text().startswith(
            f"host {socket.gethostname()} pid {os.getpid()} job 77.1 since ")
    (run / runs.OWNER).write_text("host node-017 pid 4242 job 78.0 since 2026-01-01 00:00:00")
    with pytest.raises(runs.RunLocked, match="job 78.0"), runs.locked(run):
        pass
    # the runner, which knows job 78 has ended, releases it; a live holder's line stays
    assert not runs.release_ended_job(run, "79")
    assert runs.release_ended_job(run, "78") and not (run / runs.OWNER).exists()
    with runs.locked(run):
        pass


def test_another_process_is_kept_out_with_flock_failing(no_flock, tmp_path):
    """Across processes: a child that tries the folder while this process holds it gets
    RunLocked (its flock fails as on Lustre, so only the owner file stands between)."""
    code = ("import errno, fcntl, sys\n"
            "def refuse(fd, op): raise OSError(errno.ENOSYS, 'no flock')\n"
            "fcntl.flock = refuse\n"
            "from srlib import runs\n"
            "try:\n"
            f"    with runs.locked({str(tmp_path / 'run')!r}): sys.exit(0)\n"
            "except runs.RunLocked as e:\n"
            "    print(e); sys.exit(3)\n")
    with runs.locked(tmp_path / "run"):
        child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == 3, child.stderr
    assert f"pid {os.getpid()}" in child.stdout
    again = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert again.returncode == 0, again.stdout + again.stderr


def test_other_flock_errors_are_not_swallowed(monkeypatch, tmp_path):
    def broken(fd, op):
        raise OSError(errno.EIO, "Input/output error")
    monkeypatch.setattr(fcntl, "flock", broken)
    with pytest.raises(OSError, match="Input/output error"), runs.locked(tmp_path / "run"):
        pass


@pytest.mark.parametrize("content", ["", "garbage\x00\x01", "host"])
def test_an_empty_or_garbled_owner_file_is_stale_when_the_flock_is_free(tmp_path, content):
    """A crash mid-write leaves an owner file with no owner line; the flock, released by
    the kernel, says nobody holds the folder."""
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / runs.OWNER).write_text(content)
    with runs.locked(tmp_path / "run"):
        assert f"pid {os.getpid()} " in (tmp_path / "run" / runs.OWNER).read_text()


def test_a_reused_pid_is_stale(no_flock, tmp_path):
    """The pid of a holder killed long ago, now another live process's (here: this one,
    which started after the line's time)."""
    (tmp_path / "run").mkdir()
    reused = f"host {socket.gethostname()} pid {os.getppid()} since 2000-01-01 00:00:00"
    (tmp_path / "run" / runs.OWNER).write_text(reused)
    with runs.locked(tmp_path / "run"):
        assert f"pid {os.getpid()} " in (tmp_path / "run" / runs.OWNER).read_text()
