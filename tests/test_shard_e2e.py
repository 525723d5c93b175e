"""Shards end to end: four concurrent pytest processes of the example bake-off, merged, read as one run.

Real sessions, real local sandboxes (cgroups, kernel OOM kills). The two example
tasks used here are deterministic: each heavy solution peaks above its spec (OOM
at 1x) and below 3x, lean passes, nop fails; so a single run and the merged
shards must give the same table, gate verdict and exit status.
"""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

from conftest import EXAMPLE_SUITE
from pytest_harnessbench.__main__ import main
from pytest_harnessbench.store import RunDir

pytestmark = pytest.mark.e2e  # each test starts pytest sessions in subprocesses

TASKS = ("test_sort_numbers.py", "test_word_frequencies.py")
BAKE_OFF = ["--models", "oracle:lean,oracle:heavy,nop", "--multipliers", "1,3,uncapped", "--samples", "1"]


def _pytest(cwd, *args):
    return [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-p", "no:randomly", *TASKS, *BAKE_OFF, *args]


@pytest.fixture
def suite(pytester):
    for name in ("_tasks.py", "conftest.py", *TASKS):
        shutil.copy(EXAMPLE_SUITE / name, pytester.path / name)
    return pytester.path


def _table(lines):
    """The outcome table of a summary: from its header to the enforcement line."""
    start = next(i for i, line in enumerate(lines) if line.startswith("model ") and "trials" in line)
    end = next(i for i, line in enumerate(lines) if line.startswith("enforcement:"))
    return lines[start:end]


def _summary(capsys, run_dir):
    capsys.readouterr()
    assert main(["summary", str(run_dir)]) == 0
    return capsys.readouterr().out.splitlines()


def test_four_concurrent_shards_merge_into_what_one_run_gives(suite, capsys, monkeypatch, tmp_path):
    env = {**os.environ}
    shards = [subprocess.Popen(_pytest(suite, "--hb-shard", f"{k}/4", "--hb-out", f"shard{k}"), cwd=suite, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for k in (1, 2, 3, 4)]
    # two tasks cannot rule out a 3-point regression: inconclusive, which --hb-gate-strict makes exit 6
    single = subprocess.run(_pytest(suite, "--hb-out", "single", "--hb-gate", "oracle:lean", "--hb-gate-strict"),
                            cwd=suite, env=env, capture_output=True, text=True, timeout=600)
    outputs = [shard.communicate(timeout=600)[0] for shard in shards]
    shares = []
    for k, (shard, output) in enumerate(zip(shards, outputs), start=1):
        assert shard.returncode == 1, output[-3000:]  # nop fails: pytest's status follows the trials
        said = re.search(rf"harnessbench: shard {k}/4 \(--hb-shard\): (\d+) trial\(s\) of 18 collected run here",
                         output)
        assert said, output[-3000:]
        shares.append(int(said.group(1)))
        assert f"{18 - shares[-1]} deselected" in output
    assert sorted(shares) == [4, 4, 5, 5]
    assert single.returncode == 6, single.stdout[-3000:]

    capsys.readouterr()
    assert main(["merge", str(suite / "merged"), *(str(suite / f"shard{k}") for k in (1, 2, 3, 4))]) == 0
    assert "merged 4 of 4 shard(s): 18 trial(s)" in capsys.readouterr().out

    merged_table = _table(_summary(capsys, suite / "merged"))
    single_summary = _summary(capsys, suite / "single")
    assert merged_table == _table(single_summary)
    assert "\n".join(_table(single_summary)) in single.stdout  # the summary command prints what the session printed
    assert "oracle:heavy  1x             2     0     0      2    0" in "\n".join(merged_table)

    # the gate, after the matrix, decides as the single gated session did
    status = main(["gate", str(suite / "merged"), "--baseline", "oracle:lean", "--strict"])
    said = capsys.readouterr().out
    assert status == single.returncode == 6
    merged_gate = json.loads((suite / "merged" / "gate.json").read_text())
    single_gate = json.loads((suite / "single" / "gate.json").read_text())
    assert merged_gate["status"] == single_gate["status"] == "inconclusive"
    key = lambda v: (v["candidate_model"], v["multiplier"], v["metric"])  # noqa: E731
    assert sorted(map(key, merged_gate["verdicts"])) == sorted(map(key, single_gate["verdicts"]))
    assert {key(v): v["message"] for v in merged_gate["verdicts"]} == {key(v): v["message"]
                                                                       for v in single_gate["verdicts"]}
    assert "gate vs oracle:lean: INCONCLUSIVE — exit status 6" in said

    # provenance of every shard kept; one host here, so the summary says nothing of hosts
    card = RunDir(suite / "merged").card()
    assert [s["shard"] for s in card["shards"]] == ["1/4", "2/4", "3/4", "4/4"]
    assert all(s["host"] and s["cpu_model"] and s["kernel"] and s["packages"] and s["finished_at"]
               for s in card["shards"])
    assert not any(line.startswith("hosts:") for line in _summary(capsys, suite / "merged"))

    # report and calibrate work on the merged directory unchanged
    assert main(["report", str(suite / "merged"), "-o", str(tmp_path / "merged.html")]) == 0
    html = (tmp_path / "merged.html").read_text()
    assert all(r.trial_id in html for r in RunDir(suite / "merged").latest())
    assert main(["calibrate", str(suite / "merged")]) == 0
    calibration = json.loads((suite / "merged" / "calibration.json").read_text())
    single_calibration = subprocess.run([sys.executable, "-m", "pytest_harnessbench", "calibrate", "single"],
                                        cwd=suite, env=env, capture_output=True, text=True)
    assert single_calibration.returncode == 0
    single_document = json.loads((suite / "single" / "calibration.json").read_text())
    assert calibration["recommendations"] == single_document["recommendations"]  # from outcomes alone: the same
    assert len(calibration["headroom"]) == len(single_document["headroom"])


def test_upload_of_a_merged_run_sends_every_shards_trials(tmp_path, monkeypatch):
    """The LangSmith upload reads a merged directory as any other (a real SDK against a local server)."""
    from test_langsmith_export import FakeLangSmith
    from test_merge import collection, write_shard

    from pytest_harnessbench.export.langsmith import export_run
    from pytest_harnessbench.merge import merge

    for k in (1, 2, 3):
        write_shard(tmp_path / f"s{k}", k, 3)
    merge(tmp_path / "merged", [tmp_path / f"s{k}" for k in (1, 2, 3)])
    server = FakeLangSmith()
    monkeypatch.setenv("LANGSMITH_ENDPOINT", server.url)
    monkeypatch.setenv("LANGSMITH_API_KEY", "ls-test-key")
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    try:
        result = export_run(tmp_path / "merged", timeout_s=30)
        assert result.ok and result.uploaded == len(collection())
        roots = [run for run in server.runs().values() if not run.get("parent_run_id")]
        assert {run["name"].split("[")[0] for run in roots} >= {"test_a", "test_b", "test_c"}
        assert len(roots) == len(collection())
    finally:
        server.close()


TINY = '''
import pytest

@pytest.mark.parametrize("n", range(4))
@pytest.mark.task(memory="64Mi", solutions={"lean": "echo ok > out.txt"})
def test_tiny(trial, n):
    trial.run_agent("Write ok to out.txt.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
'''


def test_a_stopped_shard_resumes_its_own_share_and_the_merge_completes(pytester, capsys):
    """Shard 2 stops after its first failure (nop), the merge lists what it lacks; resumed, merged again: whole."""
    pytester.makepyfile(test_tiny=TINY)
    base = ["-p", "no:cacheprovider", "--models", "oracle:lean,nop", "--multipliers", "1,uncapped"]
    first = pytester.runpytest_subprocess(*base, "--hb-shard", "1/2", "--hb-out", "s1", "-n", "2")
    second = pytester.runpytest_subprocess(*base, "--hb-shard", "2/2", "--hb-out", "s2", "-x")
    assert first.ret == second.ret == 1
    second.stdout.fnmatch_lines(["*PARTIAL RUN*--hb-resume*"])
    capsys.readouterr()
    assert main(["merge", str(pytester.path / "merged"), str(pytester.path / "s1"), str(pytester.path / "s2")]) == 1
    said = capsys.readouterr().out
    assert "MISSING TRIALS of shard 2/2" in said and "finish it with --hb-resume" in said

    resumed = pytester.runpytest_subprocess(*base, "--hb-shard", "2/2", "--hb-resume", "s2")
    assert resumed.ret == 1
    assert main(["merge", str(pytester.path / "merged"), str(pytester.path / "s1"), str(pytester.path / "s2")]) == 0
    records = RunDir(pytester.path / "merged").latest()
    assert len(records) == 16 and {r.outcome for r in records if r.model == "nop"} == {"failed"}
    wrong_share = pytester.runpytest_subprocess(*base, "--hb-shard", "1/2", "--hb-resume", "s2")
    assert wrong_share.ret == 4
    wrong_share.stderr.fnmatch_lines(["*--hb-resume s2: that run has --hb-shard 2/2, this one 1/2*"])
