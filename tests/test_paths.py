"""Where host state lives: TMPDIR, as the user set it, or a usage error naming it."""

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
