"""The run directory through its one writer (RunStore) and one reader (RunDir): no pytest run needed."""

import json

from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.store import RunDir, RunStore


def rec(trial_id, attempt=1, outcome="passed", started="t0"):
    return TrialRecord.from_dict({"trial_id": trial_id, "attempts": attempt, "outcome": outcome,
                                  "started_at": started, "model": "m"})


def test_what_the_store_writes_the_reader_reads(tmp_path):
    store = RunStore(tmp_path / "run")
    first, retry = rec("a", 1, "infra", "t1"), rec("a", 2, "passed", "t2")
    for record in (first, retry, rec("b")):
        store.append(record)
        store.write_trajectory(record, {"trajectories": [{"tool_calls": [], "n": record.attempts}]})
    store.write_card({"run_id": "r1"})
    store.close()
    run = RunDir(tmp_path / "run")
    assert run.is_run_dir() and run.has_results and run.card() == {"run_id": "r1"}
    assert [r.trial_id for r in run.records()] == ["a", "a", "b"]
    assert [(r.trial_id, r.attempts) for r in run.latest()] == [("a", 2), ("b", 1)]
    assert run.trajectory(first)["trajectories"][0]["n"] == 1 and run.trajectory(retry)["trajectories"][0]["n"] == 2
    assert sorted(run.trajectory_documents()) == ["a", "a~2", "b"]


def test_a_torn_last_line_and_a_missing_directory(tmp_path):
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "results.jsonl").write_text(json.dumps(rec("a").to_dict()) + "\n" + '{"trial_id": "b", "outc')
    assert [r.trial_id for r in RunDir(run_dir).records()] == ["a"]
    missing = RunDir(tmp_path / "nowhere")
    assert not missing.is_run_dir() and missing.records() == [] and missing.card() is None
