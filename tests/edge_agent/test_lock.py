"""The data dir lock: one holder at a time, its pid named, freed by any exit."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edge_agent import BufferOpenError, EdgeAgent
from edge_agent.cli import main
from edge_agent.lock import DataDirInUse, DirLock
from tests.edge_agent.conftest import GW, edge_settings
from tests.services import free_port, wait_for

# A holder in another process: takes the lock, says so, waits for its stdin.
_HOLDER = (
    "import sys; from edge_agent.lock import DirLock; "
    "lock = DirLock(sys.argv[1]); lock.acquire(); print('locked', flush=True); "
    "sys.stdin.read()"
)


@pytest.fixture
def holder(tmp_path):
    """Start a process holding the lock on a folder; return (process, folder)."""
    procs: list[subprocess.Popen] = []

    def start(path):
        proc = subprocess.Popen(
            [sys.executable, "-c", _HOLDER, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        procs.append(proc)
        assert proc.stdout is not None
        assert proc.stdout.readline() == "locked\n"  # bounded by the timeout mark
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()


def test_dirlock_writes_holder_pid(tmp_path):
    """The lock file holds the pid of the process that took the lock."""
    with DirLock(tmp_path) as lock:
        assert lock.held is True
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"


def test_dirlock_creates_missing_folder(tmp_path):
    """A folder that does not exist yet is created, with its parents."""
    path = tmp_path / "a" / "b"
    with DirLock(path):
        assert (path / ".lock").is_file()


@pytest.mark.timeout(30)
def test_dirlock_held_by_other_process_names_its_pid(tmp_path, holder):
    """A lock held elsewhere raises DataDirInUse naming the folder and the pid."""
    proc = holder(tmp_path)

    with pytest.raises(DataDirInUse) as info:
        DirLock(tmp_path).acquire()

    assert (info.value.path, info.value.pid) == (tmp_path, proc.pid)
    assert str(info.value) == f"data dir {tmp_path} is in use by pid {proc.pid}"


def test_dirlock_second_in_same_process_refused(tmp_path):
    """flock belongs to the open file, so a second lock in one process is refused."""
    with DirLock(tmp_path), pytest.raises(DataDirInUse) as info:
        DirLock(tmp_path).acquire()

    assert info.value.pid == os.getpid()


def test_dirlock_in_use_is_buffer_open_error(tmp_path):
    """DataDirInUse is a BufferOpenError, so callers of the buffer catch it."""
    with DirLock(tmp_path), pytest.raises(BufferOpenError):
        DirLock(tmp_path).acquire()


def test_dirlock_release_lets_next_take_it(tmp_path):
    """After release the next DirLock takes the lock and writes its pid."""
    first = DirLock(tmp_path)
    first.acquire()
    first.release()

    with DirLock(tmp_path) as second:
        assert (first.held, second.held) == (False, True)


@pytest.mark.timeout(30)
def test_dirlock_freed_when_holder_killed(tmp_path, holder):
    """kill -9 of the holder leaves no stale lock: the next one takes it."""
    proc = holder(tmp_path)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait(10) == -signal.SIGKILL

    with DirLock(tmp_path) as lock:
        assert lock.held is True
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"


@pytest.mark.timeout(60)
def test_agent_second_on_same_data_dir_refused(tmp_path):
    """A second agent on a data dir in use fails to start; the first keeps it."""
    settings = edge_settings(tmp_path, f"mqtt://127.0.0.1:{free_port()}")
    first = EdgeAgent(settings)
    first.start()
    try:
        with pytest.raises(DataDirInUse) as info:
            EdgeAgent(settings).start()
        running = first.running
    finally:
        first.stop()

    assert (info.value.path, info.value.pid) == (settings.data_dir, os.getpid())
    assert running is True


@pytest.mark.timeout(60)
def test_agent_stop_releases_data_dir(tmp_path):
    """Once an agent has stopped, its data dir can be locked again."""
    settings = edge_settings(tmp_path, f"mqtt://127.0.0.1:{free_port()}")
    agent = EdgeAgent(settings)
    agent.start()
    agent.stop()

    with DirLock(settings.data_dir) as lock:
        assert lock.held is True


@pytest.mark.timeout(60)
def test_agent_failed_start_releases_data_dir(tmp_path):
    """An agent whose buffer cannot open does not keep the data dir locked."""
    settings = edge_settings(tmp_path, f"mqtt://127.0.0.1:{free_port()}")
    settings.data_dir.mkdir(parents=True)
    settings.buffer_path.write_bytes(b"not a database" * 100)

    with pytest.raises(BufferOpenError, match="cannot open buffer") as info:
        EdgeAgent(settings).start()

    assert not isinstance(info.value, DataDirInUse)
    with DirLock(settings.data_dir) as lock:
        assert lock.held is True


def test_cli_data_dir_in_use_exits_2_with_one_line(tmp_path):
    """streamflow-edge on a locked data dir prints one line naming it, exits 2."""
    data_dir = tmp_path / "edge"
    with DirLock(data_dir):
        result = CliRunner().invoke(
            main, ["--gateway-id", GW, "--data-dir", str(data_dir), "--input", "-"]
        )

    assert result.exit_code == 2
    assert result.stderr == (
        f"streamflow-edge: data dir {data_dir} is in use by pid {os.getpid()}\n"
    )


@pytest.mark.timeout(60)
def test_agent_data_dir_free_after_agent_process_killed(tmp_path):
    """A streamflow-edge process killed with SIGKILL leaves its data dir free."""
    data_dir = tmp_path / "edge"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "--gateway-id",
            GW,
            "--hub-url",
            f"mqtt://127.0.0.1:{free_port()}",
            "--data-dir",
            str(data_dir),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if not k.startswith("STREAMFLOW_")},
    )
    try:
        lock_file = data_dir / ".lock"
        wait_for(
            lambda: lock_file.is_file() and lock_file.read_text() == f"{proc.pid}\n",
            timeout=20,
            what="the agent's lock",
        )
        with pytest.raises(DataDirInUse):
            DirLock(data_dir).acquire()
    finally:
        proc.kill()
    assert proc.wait(10) == -signal.SIGKILL

    with DirLock(data_dir) as lock:
        assert lock.held is True
