"""Harbor task directories as pytest items (harbor_items.py), collected in process through the plugin.

The items themselves are inspected (``pytester.inline_genitems``): their ids, their ``task`` marker, the
Harbor task they carry, and the skip that the local backend gives them. Running them needs Docker
(tests/test_harbor_docker.py).
"""

from __future__ import annotations


import pytest

from support import inprocess
from test_harbor_tasks import CURRENT, MARKER_TASK, make_task

from pytest_harnessbench.harbor_items import SKIP_REASON, in_task_dir


def test_only_a_task_directorys_own_files_are_kept_from_pytest(tmp_path):
    task = make_task(tmp_path, CURRENT, name="demo")
    (task / "tests" / "test_outputs.py").write_text("")
    assert in_task_dir(task / "tests" / "test_outputs.py") is False  # its parent, tests/, is no task directory
    assert in_task_dir(task / "tests") and in_task_dir(task / "solution") and in_task_dir(task / "environment")
    assert not in_task_dir(task / "task.toml") and not in_task_dir(task / "instruction.md")
    assert not in_task_dir(tmp_path / "test_plain.py")
    bare = make_task(tmp_path, None, name="bare")  # instruction.md and tests/test.sh: a task directory still
    assert in_task_dir(bare / "tests")


def test_each_task_toml_is_one_task_function_parametrized_like_a_marker_task(pytester):
    make_task(pytester.path, CURRENT, name="demo-task")
    make_task(pytester.path, CURRENT, name="other")
    (pytester.path / "demo-task" / "tests" / "test_outputs.py").write_text("import not_installed_here\n")
    pytester.makepyfile(test_marker=MARKER_TASK)
    items, _ = pytester.inline_genitems("-p", "no:cacheprovider", "--models", "oracle,nop", "--multipliers", "1,3")
    ids = [item.nodeid for item in items]
    assert len(ids) == 12 and "demo-task/task.toml::demo-task[oracle@1x#1]" in ids
    assert "other/task.toml::other[nop@3x#1]" in ids and "test_marker.py::test_marker[nop@3x#1]" in ids
    harbor = [item for item in items if item.nodeid.endswith(".toml::demo-task[oracle@3x#1]")]
    (item,) = harbor
    assert item.function.harbor_task.name == "demo-task"
    assert item.function.harbor_task.spec.memory_bytes == 512 * 2**20  # the task.toml's own resources
    assert item.get_closest_marker("task") is not None
    skip = item.get_closest_marker("skip")
    assert skip is not None and skip.kwargs["reason"] == SKIP_REASON  # the local backend runs no images
    marker_item = next(i for i in items if i.nodeid.startswith("test_marker.py"))
    assert marker_item.get_closest_marker("skip") is None


def test_a_task_directory_without_task_toml_is_a_usage_error_naming_the_file(pytester):
    make_task(pytester.path, None, name="bare")
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: */bare/task.toml: missing (a Harbor task directory needs one)"])


def test_a_malformed_task_toml_is_a_usage_error_and_nothing_runs(pytester):
    make_task(pytester.path, '[environment]\nmemory = "2Q"\n', name="bad")
    pytester.makepyfile(test_marker=MARKER_TASK)
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle", "--hb-out", "run")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: *bad/task.toml: [[]environment[]] memory: unknown unit*"])
    assert not (pytester.path / "run").exists()
