"""A trial's identity, from its node id: the one parser (no pytest run needed)."""

from pathlib import Path

import pytest

from pytest_harnessbench.models import parse_model
from pytest_harnessbench.resources import Multiplier, SpecError
from pytest_harnessbench.trial import Case, SuiteRoot, TrialKey

INI_HERE = SuiteRoot(Path("/suite"), ini_dir=Path("/suite"))  # node ids relative to the ini file's directory


def case(model="oracle:lean", mult="3", sample=2):
    return Case(parse_model(model), Multiplier.parse(mult), sample)


def key(nodeid, a_case=None, suite=INI_HERE):
    return TrialKey.of(nodeid, a_case or case(), suite)


def test_the_key_keeps_the_users_own_parameters_in_the_task():
    own = key("suite/t.py::TestX::test_sort[big-oracle:lean@3x#2]")
    assert (own.function_id, own.task_id, own.name) == ("suite/t.py::TestX::test_sort", "suite/t.py::TestX::test_sort[big]",
                                                        "test_sort")
    plain = key("t.py::test_sort[oracle:lean@3x#2]")
    assert plain.task_id == plain.function_id == "t.py::test_sort"


def test_trial_ids_are_filename_safe_stable_and_distinct_per_task_and_case():
    a = key("t.py::test_sort[oracle:lean@3x#2]")
    assert a.trial_id == key("t.py::test_sort[oracle:lean@3x#2]").trial_id
    assert a.trial_id.startswith("test_sort_oracle_lean@3x#2_-") and "/" not in a.trial_id
    others = {key("t.py::test_sort[big-oracle:lean@3x#2]").trial_id,
              key("u.py::test_sort[oracle:lean@3x#2]").trial_id,
              key("t.py::test_sort[oracle:lean@3x#1]", case(sample=1)).trial_id}
    assert a.trial_id not in others and len(others) == 3


def make(path: Path, *files: str) -> None:
    for name in files:
        (path / name).parent.mkdir(parents=True, exist_ok=True)
        (path / name).write_text("")


def test_task_ids_do_not_depend_on_the_rootdir(tmp_path):
    """Issue 27: pytest's rootdir moves with the working directory and with paths among the arguments."""
    make(tmp_path, "a/evals/test_x.py", "a/pkg/__init__.py", "a/pkg/sub/__init__.py", "a/pkg/sub/test_y.py")
    for rootdir, prefix in ((tmp_path, "a/"), (tmp_path / "a", ""), (tmp_path / "a" / "evals", "../")):
        suite = SuiteRoot(rootdir)
        assert key(f"{prefix}evals/test_x.py::test_x[oracle:lean@3x#2]", suite=suite).task_id == "test_x.py::test_x"
        assert key(f"{prefix}pkg/sub/test_y.py::T::test_y[oracle:lean@3x#2]", suite=suite).task_id == \
            "pkg/sub/test_y.py::T::test_y"  # from the directory above its outermost package


def test_task_ids_start_at_the_ini_files_directory_and_harbor_tasks_at_their_dataset(tmp_path):
    make(tmp_path, "proj/pytest.ini", "proj/evals/test_x.py", "data/word-count/task.toml")
    suite = SuiteRoot(tmp_path, ini_dir=tmp_path / "proj")
    assert key("proj/evals/test_x.py::test_x[oracle:lean@3x#2]", suite=suite).task_id == "evals/test_x.py::test_x"
    assert key("data/word-count/task.toml::word-count[oracle:lean@3x#2]", suite=suite).task_id == \
        "word-count/task.toml::word-count"


def test_two_files_that_would_share_a_task_id_are_refused(tmp_path):
    make(tmp_path, "a/test_x.py", "b/test_x.py")
    suite = SuiteRoot(tmp_path)
    key("a/test_x.py::test_x[oracle:lean@3x#2]", suite=suite)
    with pytest.raises(SpecError, match="a/test_x.py and .*b/test_x.py would share the task id test_x.py"):
        key("b/test_x.py::test_x[oracle:lean@3x#2]", suite=suite)


def test_trial_ids_keep_non_ascii_letters_and_hash_what_they_drop():
    umlaut = key("t.py::test_größe[oracle:rüns@3x#2]", case("oracle:rüns")).trial_id
    assert umlaut.startswith("test_größe_oracle_rüns@3x#2_-")
    faces = {key("t.py::test_x[x]", case(f"oracle:{face}")).trial_id for face in ("😀", "😃")}
    assert len(faces) == 2  # the emoji are dropped, and a digest of the case keeps the two apart
