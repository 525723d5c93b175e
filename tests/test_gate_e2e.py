"""The gate decides the exit status of a bake-off (pytester, in process; real local sandboxes)."""

import json

import pytest

from support import inprocess

SUITE = '''
import pytest

HOG = "python3 -c 'x = bytearray(150 * 1024 * 1024); x[::4096] = b\\"1\\" * len(x[::4096])'"

@pytest.mark.parametrize("n", range({tasks}))
@pytest.mark.task(memory="64Mi", solutions={{"lean": "echo ok > out.txt", "same": "echo ok > out.txt",
                                             "broken": "echo no > out.txt", "hog": HOG + " && echo ok > out.txt"}})
def test_task(trial, n):
    trial.run_agent("Write ok to out.txt.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
'''


def run_gate(pytester, tmp_path, monkeypatch, tasks, models, *extra):
    pytester.makepyfile(test_gate_suite=SUITE.format(tasks=tasks))
    return inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-out", "run", "--models", models,
                         "--hb-gate", "oracle:lean", *extra)


def gate_document(pytester):
    return json.loads((pytester.path / "run" / "gate.json").read_text())


def test_equal_candidate_passes_with_exit_0(pytester, tmp_path, monkeypatch):
    # 12 tasks that both pass can only show that the candidate is within about 29 points (README)
    result = run_gate(pytester, tmp_path, monkeypatch, 12, "oracle:lean,oracle:same", "--hb-gate-margin", "score:30pt")
    result.stdout.fnmatch_lines(["*gate vs oracle:lean: PASS — exit status 0*", "*score pass: oracle:same vs oracle:lean*12 tasks*"])
    assert result.ret == 0
    assert gate_document(pytester)["status"] == "pass"


def test_much_worse_candidate_fails_with_exit_1(pytester, tmp_path, monkeypatch):
    result = run_gate(pytester, tmp_path, monkeypatch, 12, "oracle:lean,oracle:broken")
    result.stdout.fnmatch_lines(["*gate vs oracle:lean: FAIL — exit status 1*"])
    assert result.ret == 1
    verdict = gate_document(pytester)["verdicts"][0]
    assert verdict["status"] == "fail" and verdict["multiplier"] == "1x"


def test_tiny_suite_is_inconclusive_exit_0_unless_strict_or_in_ci(pytester, tmp_path, monkeypatch):
    lenient = run_gate(pytester, tmp_path, monkeypatch, 1, "oracle:lean,oracle:broken")
    lenient.stdout.fnmatch_lines(["*gate plan (score): 1 tasks × 1 samples can fail a regression of ≥ 100 pts*",
                                  "*gate: an INCONCLUSIVE verdict exits 0 here (no CI variable)*",
                                  "*gate vs oracle:lean: INCONCLUSIVE — exit status 0*",
                                  "*NOT ruled out)*"])
    assert lenient.stdout.str().index("gate plan") < lenient.stdout.str().index("test_gate_suite.py")
    assert lenient.ret == 0  # the candidate's failed trials do not fail a gated run
    args = ["-p", "no:cacheprovider", "--models", "oracle:lean,oracle:broken", "--hb-gate", "oracle:lean"]
    strict = inprocess.run(pytester, *args, "--hb-out", "run2", "--hb-gate-strict")
    assert strict.ret == 6  # distinct from a failed gate's 1
    monkeypatch.setenv("CI", "true")  # as GitHub Actions, GitLab and Buildkite set it
    in_ci = inprocess.run(pytester, *args, "--hb-out", "run3")
    in_ci.stdout.fnmatch_lines(["*gate: an INCONCLUSIVE verdict fails this run, exit status 6 (CI is set)*",
                                "*gate vs oracle:lean: INCONCLUSIVE — exit status 6*"])
    assert in_ci.ret == 6
    gate = json.loads((pytester.path / "run3" / "gate.json").read_text())
    assert gate["exit_status"] == 6 and gate["plan"][0]["detectable_points"] == 100.0
    accepted = inprocess.run(pytester, *args, "--hb-out", "run4", "--hb-gate-accept-inconclusive")
    accepted.stdout.fnmatch_lines(["*an INCONCLUSIVE verdict exits 0 here (--hb-gate-accept-inconclusive)*"])
    assert accepted.ret == 0


def test_candidate_without_a_valid_trial_does_not_pass_silently(pytester, tmp_path, monkeypatch):
    # issue 17: every candidate trial is infra/oom. The default margin gates on score, which counts them.
    result = run_gate(pytester, tmp_path, monkeypatch, 6, "oracle:lean,oracle:hog")
    result.stdout.fnmatch_lines(["*gate vs oracle:lean: FAIL — exit status 1*",
                                 "*@1x: score fail: oracle:hog vs oracle:lean: 0.0% vs 100.0%*6 tasks*"])
    assert result.ret == 1
    # pass_rate leaves infra out, so there is nothing to compare: the verdict says why, and blocks
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-out", "run2", "--models",
                           "oracle:lean,oracle:hog", "--hb-gate", "oracle:lean", "--hb-gate-margin", "pass_rate:3pt")
    result.stdout.fnmatch_lines(["*gate vs oracle:lean: INCONCLUSIVE — exit status 6*",
                                 "*@1x: pass_rate inconclusive: oracle:hog vs oracle:lean: candidate has no valid "
                                 "trial (6/6 infra), baseline 100.0% (6/6)*"])
    assert result.ret == 6


def test_compare_against_an_earlier_run(pytester, tmp_path, monkeypatch):
    run_gate(pytester, tmp_path, monkeypatch, 12, "oracle:lean")
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--hb-out", "today", "--models", "oracle:broken",
                           "--hb-gate", "oracle:lean", "--hb-compare", "run")
    result.stdout.fnmatch_lines(["*gate vs oracle:lean (baseline from run): FAIL*", "*oracle:broken vs oracle:lean*12 tasks*"])
    assert result.ret == 1


@pytest.mark.parametrize("args, message", [
    (["--hb-gate", "nop"], "*--hb-gate 'nop' is not one of --models*"),
    (["--hb-gate", "oracle:lean", "--hb-gate-margin", "pass_rate:3"], "*--hb-gate-margin*"),
    (["--hb-gate", "oracle:lean", "--hb-gate-at", "3x"], "*--hb-gate-at '3x': name one of --multipliers (1x)*"),
    (["--hb-gate", "oracle:lean", "--hb-compare", "nowhere"], "*--hb-compare nowhere: no results.jsonl*"),
    (["--hb-compare", "nowhere"], "*--hb-compare and --hb-gate-at need --hb-gate BASELINE_MODEL*"),
])
def test_gate_usage_errors(pytester, args, message):
    pytester.makepyfile(test_gate_suite=SUITE.format(tasks=1))
    result = inprocess.run(pytester, "-p", "no:cacheprovider", "--models", "oracle:lean", *args)
    assert result.ret == 4
    result.stderr.fnmatch_lines([message])
