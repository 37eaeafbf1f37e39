import subprocess
import sys
import time

import pytest

from huale.locking import FolderLock, FolderLockedError

HOLD = "import sys, time; from huale.locking import FolderLock; FolderLock(sys.argv[1]).acquire(); print('held', flush=True); time.sleep(60)"


def test_second_holder_is_refused_and_released_after(tmp_path):
    with FolderLock(tmp_path):
        with pytest.raises(FolderLockedError, match="in use by pid"):
            FolderLock(tmp_path).acquire()
    with FolderLock(tmp_path):  # released: can be taken again
        pass


def test_killed_holder_releases_the_lock(tmp_path):
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == "held"
        with pytest.raises(FolderLockedError, match=f"pid {proc.pid}"):
            FolderLock(tmp_path).acquire()
    finally:
        proc.kill()  # SIGKILL: no cleanup code runs in the holder
        proc.wait()
    deadline = time.time() + 5
    while True:
        try:
            FolderLock(tmp_path).acquire().release()
            break
        except FolderLockedError:
            assert time.time() < deadline, "lock not released after SIGKILL"
            time.sleep(0.05)


def test_a_waiting_holder_gets_the_lock_when_it_is_released(tmp_path):
    import threading

    got = threading.Event()

    def wait_for_it():
        with FolderLock(tmp_path, wait=True):
            got.set()

    with FolderLock(tmp_path):
        waiter = threading.Thread(target=wait_for_it)
        waiter.start()
        assert not got.wait(0.3)  # still held: the waiter waits instead of raising
    waiter.join(5)
    assert got.is_set()
