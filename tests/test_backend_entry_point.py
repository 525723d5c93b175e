"""A backend another package registers through the entry point group runs trials and shows in ``--help``.

Nothing is installed: the package and its ``*.dist-info/entry_points.txt`` sit in a temporary directory on the
subprocess's PYTHONPATH, which is all ``importlib.metadata`` needs to find a distribution.
"""

import json
import os

import pytest
from support.rundir import results

# e2e: the entry point is found by a pytest process with the dist-info on its PYTHONPATH.
pytestmark = pytest.mark.e2e

# A test double of a third-party backend: the local backend under another name, with an option of its own
# that reaches the harness card (so the test sees the backend's own parsing at work).
BACKEND = '''
from dataclasses import dataclass

from pytest_harnessbench.options import BackendOptions, ConfigError, Option
from pytest_harnessbench.sandbox.local import LocalBackend


@dataclass(frozen=True)
class TagOptions(BackendOptions):
    tag: str = "plain"


class TaggedBackend(LocalBackend):
    name = "tagged"
    options = (Option("tagged_tag", "--hb-tagged-tag", "hb_tagged_tag", "plain",
                      "tagged backend: one word written to the harness card"),)
    tag = "plain"

    @classmethod
    def parse_options(cls, raw):
        tag = raw["tagged_tag"].strip()
        if not tag.isalpha():
            raise ConfigError(f"--hb-tagged-tag {tag!r} is not one word")
        return TagOptions(tag)

    @classmethod
    def create(cls, options, run_id, *, untrusted=()):
        backend = cls(run_id)
        backend.tag = options.tag
        return backend

    def describe(self):
        return {**super().describe(), "backend": self.name, "tag": self.tag}
'''

TASK = '''
import pytest


@pytest.mark.task(memory="64Mi", solutions="echo 42 > answer.txt")
def test_answer(trial):
    trial.run_agent("Write 42 to answer.txt.")
    assert trial.sandbox.read_file("answer.txt").strip() == "42"
'''


@pytest.fixture
def tagged_backend(tmp_path, monkeypatch):
    """The package ``hb_tagged`` and its distribution's metadata, on PYTHONPATH."""
    site = tmp_path / "site"
    (site / "hb_tagged").mkdir(parents=True)
    (site / "hb_tagged" / "__init__.py").write_text(BACKEND)
    dist_info = site / "hb_tagged-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: hb-tagged\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[pytest_harnessbench.backends]\ntagged = hb_tagged:TaggedBackend\n")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")])))
    return site


def test_a_registered_backend_shows_in_help_with_its_options(pytester, tagged_backend):
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--help")
    result.stdout.fnmatch_lines(["*--hb-backend=BACKEND*sandbox backend: local, docker, kubernetes, tagged*",
                                 "*--hb-tagged-tag=TAGGED_TAG*", "*tagged backend: one word written to the harness*"])


def test_a_registered_backend_runs_a_trial_with_its_own_options(pytester, tagged_backend):
    pytester.makepyfile(test_task=TASK)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-backend", "tagged",
                                           "--hb-tagged-tag", "blue", "--hb-out", "run")
    result.assert_outcomes(passed=1)
    [record] = results(pytester.path / "run")
    assert (record["backend"], record["outcome"]) == ("tagged", "passed")
    assert record["enforcement"].startswith("cgroup-")
    card = json.loads((pytester.path / "run" / "harness.json").read_text())
    assert (card["backend"]["backend"], card["backend"]["tag"], card["settings"]["backend"]) == ("tagged", "blue", "tagged")


def test_a_registered_backend_refuses_a_bad_value_of_its_option_as_a_usage_error(pytester, tagged_backend):
    pytester.makepyfile(test_task=TASK)
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-backend", "tagged",
                                           "--hb-tagged-tag", "two words")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--hb-tagged-tag 'two words' is not one word*"])
