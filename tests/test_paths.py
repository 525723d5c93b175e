"""Where host state lives: TMPDIR, as the user set it, or a usage error naming it; private to its user."""

import os
import stat
import tempfile
from pathlib import Path

import pytest

from support import inprocess

from pytest_harnessbench.paths import StateDirError, state_root


@pytest.mark.parametrize("tmpdir", ["/proc/self", "/nonexistent/tmp"])
def test_an_unusable_tmpdir_is_named_not_replaced_by_tmp(monkeypatch, tmpdir):
    """Issue 21: Python's tempfile falls back to /tmp when TMPDIR cannot hold files."""
    monkeypatch.setenv("TMPDIR", tmpdir)
    with pytest.raises(StateDirError, match=f"^TMPDIR={tmpdir} cannot hold files .*; set TMPDIR to a writable"):
        state_root()


def test_an_unusable_tmpdir_is_a_usage_error_before_any_trial(pytester, monkeypatch):
    pytester.makepyfile(test_t='''
import pytest

@pytest.mark.task(solutions="true")
def test_t(trial):
    trial.run_agent("x")
''')
    inprocess.use_tmpdir(monkeypatch, "/proc/self")
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: TMPDIR=/proc/self cannot hold files*"])


def _root_path() -> Path:
    return Path(tempfile.gettempdir()) / f"harnessbench-{os.getuid()}"


def test_the_state_root_is_created_private():
    root = state_root()
    assert root == _root_path()
    info = os.lstat(root)
    assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o700, os.geteuid())


def test_a_state_root_of_ours_that_others_can_enter_is_made_private():
    _root_path().mkdir(mode=0o755)
    os.chmod(_root_path(), 0o755)
    state_root()
    assert stat.S_IMODE(os.lstat(_root_path()).st_mode) == 0o700


def test_a_link_in_place_of_the_state_root_is_refused(tmp_path):
    (tmp_path / "elsewhere").mkdir()
    _root_path().symlink_to(tmp_path / "elsewhere")
    with pytest.raises(StateDirError, match=r"is not a directory \(a link or a file\); remove it or set TMPDIR"):
        state_root()


@pytest.mark.may_skip("making a directory another user's needs root")
@pytest.mark.skipif(os.geteuid() != 0, reason="making a directory another user's needs root")
def test_a_state_root_of_another_user_is_refused():
    """Another user who made ``<TMPDIR>/harnessbench-0`` first could reach (or swap) a root session's trials."""
    _root_path().mkdir(mode=0o700)
    os.chown(_root_path(), 1000, 1000)
    with pytest.raises(StateDirError, match=r"belongs to uid 1000, not to this user \(uid 0\); remove it or set"):
        state_root()
