"""Disk evidence read from the filesystem itself (sandbox/disk.py), on a real, small tmpfs."""

import os
import subprocess

import pytest

from pytest_harnessbench.sandbox import disk
from pytest_harnessbench.sandbox.base import Evidence


@pytest.fixture
def small_fs(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a filesystem needs root")
    mount = tmp_path / "fs"
    mount.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)], check=True)
    yield mount
    subprocess.run(["umount", str(mount)], check=True)


def test_a_filesystem_filled_by_a_command_reads_full_and_the_probe_leaves_nothing(small_fs):
    assert disk.read(small_fs) == disk.DiskReading(free_bytes=8 << 20, full=False)
    subprocess.run(["dd", "if=/dev/zero", f"of={small_fs / 'big.bin'}", "bs=1M", "count=20"], capture_output=True)
    assert disk.read(small_fs) == disk.DiskReading(free_bytes=0, full=True)
    assert [p.name for p in small_fs.iterdir()] == ["big.bin"]
    (small_fs / "big.bin").unlink()  # freed again before the end: no longer full
    assert disk.record(Evidence(), small_fs).disk_full is False


def test_a_directory_that_is_gone_gives_no_reading(tmp_path):
    assert disk.read(tmp_path / "gone") is None
    assert disk.record(Evidence(), tmp_path / "gone").disk_free_bytes is None


def test_on_a_shared_disk_full_counts_only_when_the_trials_own_files_filled_it(small_fs):
    """Review finding: the local backend's work directories share TMPDIR's disk; another writer filling it is
    not the trial's doing (its timeout or failure keeps its own cause)."""
    mine, other = small_fs / "trial", small_fs / "other"
    mine.mkdir()
    other.mkdir()
    free_at_start = disk.free_bytes(mine)
    (mine / "small.txt").write_text("x" * 4096)
    subprocess.run(["dd", "if=/dev/zero", f"of={other / 'big.bin'}", "bs=1M", "count=20"], capture_output=True)
    assert disk.read(mine).full  # the filesystem is full ...
    assert disk.record(Evidence(), mine, free_at_start).disk_full is False  # ... but not by this trial
    (other / "big.bin").unlink()
    free_at_start = disk.free_bytes(mine)
    subprocess.run(["dd", "if=/dev/zero", f"of={mine / 'big.bin'}", "bs=1M", "count=20"], capture_output=True)
    assert disk.record(Evidence(), mine, free_at_start).disk_full is True
