"""--hb-gate-sequential end to end (pytester, real local sandboxes): it stops once decided, says why, exits as
the gate says; under xdist every worker stops; a resumed run keeps the decision."""

import json
import re

import pytest
from support.rundir import results

pytestmark = pytest.mark.e2e  # pytest in a subprocess, and xdist workers

SUITE = '''
import pytest

@pytest.mark.parametrize("n", range({tasks}))
@pytest.mark.task(solutions={{"lean": "echo ok > out.txt", "same": "echo ok > out.txt", "broken": "echo no > out.txt"}})
def test_task(trial, n):
    trial.run_agent("Write ok to out.txt.")
    assert trial.sandbox.read_file("out.txt").strip() == "ok"
'''

TASKS = 30


def run(pytester, models, *extra, out="run"):
    pytester.makepyfile(test_seq_suite=SUITE.format(tasks=TASKS))
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-out", out, "--models", models,
                                         "--hb-gate", "oracle:lean", "--hb-gate-sequential", "-rs", *extra)


def gate_document(pytester, out="run"):
    return json.loads((pytester.path / out / "gate.json").read_text())


def recorded(pytester, out="run"):
    return results(pytester.path / out)


def test_a_clearly_worse_candidate_stops_early_skips_the_rest_and_fails_the_gate(pytester):
    result = run(pytester, "oracle:lean,oracle:broken", "--samples", "2")
    assert result.ret == 1  # a failed gate
    sequential = gate_document(pytester)["sequential"]
    looked = sequential["looked"]
    assert sequential["stopped"] and 10 <= looked < TASKS and sequential["reason"] == f"decided after {looked}/{TASKS} tasks"
    assert sequential["decision"]["reason"] == sequential["reason"]
    skipped = 4 * TASKS - len(recorded(pytester))
    assert skipped > 0 and sequential["skipped_trials"] == skipped
    result.stdout.fnmatch_lines([f"*harnessbench: gate decided after {looked}/{TASKS} tasks: the remaining trials are skipped*",
                                 f"SKIPPED [[]{skipped}[]] *: decided after {looked}/{TASKS} tasks",
                                 "*gate vs oracle:lean: FAIL — exit status 1*",
                                 f"*sequential: decided after {looked}/{TASKS} tasks (seeded order *); saved {skipped} trials*"])
    outcomes = result.parseoutcomes()
    assert outcomes["skipped"] == skipped and outcomes["passed"] + outcomes["failed"] == 4 * TASKS - skipped
    # two samples: pass^k / pass@k in the summary and gate.json, over the tasks that ran
    # (deterministic oracles: every task's samples agree, so the terminal says so in one line; the figures are in
    # gate.json, and -v prints the table: tests/test_report.py)
    result.stdout.fnmatch_lines(["reliability: every task's samples agree (pass^k = pass@k = score; -v: table)"])
    cells = {c["model"]: c for c in gate_document(pytester)["reliability"]["cells"]}
    assert cells["oracle:lean"]["pass_k"][3] == {"metric": "pass^2", "k": 2, "value": 1.0, "low": 1.0, "high": 1.0,
                                                 "tasks": cells["oracle:lean"]["pass_k"][3]["tasks"], "left_out": 0}
    # the tasks ran in the card's seeded order, each task's trials together
    card = json.loads((pytester.path / "run" / "harness.json").read_text())
    order = card["sequential"]["order"]
    assert sorted(order) != order and len(order) == TASKS
    ran = [r["task_id"] for r in recorded(pytester)]
    assert list(dict.fromkeys(ran)) == order[:len(set(ran))]
    # resuming the decided run starts no trial: the decision is in the run directory
    again = pytester.runpytest_subprocess("-p", "no:cacheprovider", "--hb-resume", "run", "--models",
                                          "oracle:lean,oracle:broken", "--hb-gate", "oracle:lean", "--hb-gate-sequential",
                                          "--samples", "2")
    assert again.ret == 1 and len(recorded(pytester)) == 4 * TASKS - skipped
    assert gate_document(pytester)["sequential"]["looked"] == looked


def test_equal_models_exit_0(pytester):
    result = run(pytester, "oracle:lean,oracle:same", "--hb-gate-margin", "score:30pt")
    assert result.ret == 0
    document = gate_document(pytester)
    assert document["status"] == "pass"
    sequential = document["sequential"]
    # a pass waits for the last task (the fixed gate's interval): an early pass is where the error rates rose
    assert not sequential["stopped"] and sequential["looked"] == TASKS and sequential["skipped_trials"] == 0
    assert len(recorded(pytester)) == 2 * TASKS and sequential["comparisons"][0]["decided_after"] == TASKS
    result.stdout.fnmatch_lines([f"*sequential: not decided early; looked after {TASKS}/{TASKS} tasks*"])


def test_under_xdist_both_workers_stop(pytester):
    result = run(pytester, "oracle:lean,oracle:broken", "-n", "2", "-v")
    assert result.ret == 1
    sequential = gate_document(pytester)["sequential"]
    assert sequential["stopped"] and sequential["skipped_trials"] == 2 * TASKS - len(recorded(pytester))
    workers = set(re.findall(r"\[(gw\d)\][^\n]*SKIPPED", result.stdout.str()))
    assert workers == {"gw0", "gw1"}, result.stdout.str()
