"""harnessbench merge (merge.py) on run directories written through the store, as shards write them."""

import json
from pathlib import Path

import pytest

from pytest_harnessbench.__main__ import main
from pytest_harnessbench.merge import MergeError, merge
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.shard import Shard, assign, plan, trial_key
from pytest_harnessbench.store import RunDir, RunStore
from pytest_harnessbench.trial import TrialKey, make_cases
from pytest_harnessbench.config import parse_models, parse_multipliers

MODELS, MULTS, SAMPLES = ["oracle:lean", "nop"], ["1x", "3x"], 2
TASKS = ["suite/test_a.py::test_a", "suite/test_b.py::test_b", "suite/test_c.py::test_c"]


def collection(tasks=TASKS):
    """trial id -> (task id, case), as the plugin names them."""
    cases = make_cases(parse_models(",".join(MODELS)), parse_multipliers(",".join(MULTS)), SAMPLES)
    return {TrialKey(t, t, case).trial_id: (t, case) for t in tasks for case in cases}


def card(run_id, shard_plan, **changes):
    document = {"run_id": run_id, "started_at": f"2026-12-06T0{shard_plan['index'] if shard_plan else 1}:00:00Z",
                "finished_at": "2026-12-06T09:00:00Z", "enforcement": "cgroup-v1",
                "settings": {"models": MODELS, "multipliers": MULTS, "samples": SAMPLES, "backend": "local",
                             "scale": ["cpu", "memory"], "enforcement": "cgroup", "oom_as": "infra", "max_steps": 30,
                             "model_params": {}},
                "harness": {"system_prompt_sha256": "p" * 8, "toolset_sha256": "t" * 8},
                "shard": shard_plan, "provenance": {"host": f"host-{run_id}", "cpu_model": "cpu", "kernel": "6.1",
                                                     "images": {}},
                "packages": {"pytest": "9"}, "backend": {"backend": "local"}}
    for key, value in changes.items():
        section, _, name = key.partition("__")
        if name:
            document[section][name] = value
        else:
            document[key] = value
    return document


def record(run_id, trial_id, task_id, case, outcome, finished_at, attempt=1):
    return TrialRecord.from_dict({"run_id": run_id, "trial_id": trial_id, "task_id": task_id, "model": case.model.text,
            "multiplier": case.multiplier.label, "multiplier_factor": case.multiplier.factor, "sample": case.sample,
            "outcome": outcome, "cause": {"passed": None, "failed": "assertion", "infra": "oom"}[outcome],
            "message": "", "allocation": {}, "enforcement": "cgroup-v1", "backend": "local", "resources": {},
            "timing": {}, "usage": {}, "metrics": {}, "metrics_missing": {}, "attempts": attempt,
            "started_at": finished_at, "finished_at": finished_at, "worker": "main", "rewards": None, "schema": 1})


def outcome_of(case):
    return "passed" if case.model.text == "oracle:lean" else "failed"


def write_shard(path: Path, index, total, *, tasks=TASKS, skip=(), outcome=outcome_of, run_id=None, **changes):
    """A shard's run directory: its share of the collection, each trial recorded (but ``skip``) with a trajectory."""
    run_id = run_id or f"run{index}"
    trials = collection(tasks)
    key_of = {t: trial_key(task, case.id) for t, (task, case) in trials.items()}
    cells = {key_of[t]: (case.model.text, case.multiplier.label) for t, (_, case) in trials.items()}
    shares = assign(cells.items(), total)
    mine = [t for t in trials if shares[key_of[t]] == index]
    store = RunStore(path)
    store.write_card(card(run_id, plan(Shard(index, total), shares, (task for task, _ in trials.values())),
                          **changes))
    for n, trial_id in enumerate(sorted(mine)):
        if trial_id in skip:
            continue
        task, case = trials[trial_id]
        r = record(run_id, trial_id, task, case, outcome(case), f"2026-12-06T0{index}:00:{n:02d}Z")
        store.append(r)
        store.write_trajectory(r, {"messages": [], "traceback": None})
    store.close()
    return mine


def test_four_shards_merge_into_the_whole(tmp_path):
    shares = [write_shard(tmp_path / f"s{i}", i, 4) for i in (1, 2, 3, 4)]
    merged = merge(tmp_path / "out", [tmp_path / f"s{i}" for i in (4, 2, 1, 3)])
    assert not merged.partial
    run = RunDir(tmp_path / "out")
    assert sorted(r.trial_id for r in run.latest()) == sorted(collection())
    assert sum(map(len, shares)) == len(collection())
    assert len(run.trajectory_documents()) == len(collection())
    document = run.card()
    assert [s["shard"] for s in document["shards"]] == ["1/4", "2/4", "3/4", "4/4"]
    assert {s["host"] for s in document["shards"]} == {"host-run1", "host-run2", "host-run3", "host-run4"}
    assert all(s["cpu_model"] == "cpu" and s["kernel"] == "6.1" and s["packages"] for s in document["shards"])
    assert document["merge"]["partial"] is False and document["started_at"] == "2026-12-06T01:00:00Z"


@pytest.mark.parametrize("changes, named", [
    ({"settings__models": ["oracle:lean", "oracle:heavy"]}, "--models oracle:lean,nop vs oracle:lean,oracle:heavy"),
    ({"settings__samples": 3}, "--samples 2 vs 3"),
    ({"settings__backend": "docker"}, "--hb-backend local vs docker"),
    ({"enforcement": "cgroup-v2"}, "enforcement method cgroup-v1 vs cgroup-v2"),
    ({"harness__toolset_sha256": "other"}, "tool set"),
])
def test_different_experiments_are_refused_naming_the_difference(tmp_path, changes, named):
    write_shard(tmp_path / "s1", 1, 2)
    write_shard(tmp_path / "s2", 2, 2, **changes)
    with pytest.raises(MergeError, match="different experiments") as caught:
        merge(tmp_path / "out", [tmp_path / "s1", tmp_path / "s2"])
    assert named in str(caught.value)
    assert not (tmp_path / "out").exists()


def test_another_task_set_is_refused_naming_the_tasks(tmp_path):
    write_shard(tmp_path / "s1", 1, 2)
    write_shard(tmp_path / "s2", 2, 2, tasks=TASKS + ["suite/test_d.py::test_d"])
    with pytest.raises(MergeError, match=r"task set \(only in the second: suite/test_d.py::test_d\)"):
        merge(tmp_path / "out", [tmp_path / "s1", tmp_path / "s2"])


def test_another_shard_count_is_refused(tmp_path):
    write_shard(tmp_path / "s1", 1, 2)
    write_shard(tmp_path / "s2", 2, 3)
    with pytest.raises(MergeError, match="number of shards"):
        merge(tmp_path / "out", [tmp_path / "s1", tmp_path / "s2"])


def test_missing_shard_is_listed_then_completed(tmp_path, capsys):
    first = write_shard(tmp_path / "s1", 1, 3)
    third = write_shard(tmp_path / "s3", 3, 3)
    status = main(["merge", str(tmp_path / "out"), str(tmp_path / "s1"), str(tmp_path / "s3")])
    said = capsys.readouterr().out
    assert status == 1
    assert "MISSING SHARDS: 2/3" in said and "PARTIAL RUN" in said
    second = sorted(trial_key(task, case.id) for t, (task, case) in collection().items()
                    if t not in set(first) | set(third))
    missing = RunDir(tmp_path / "out").card()["merge"]["missing"]
    assert missing["shards"] == ["2/3"] and missing["trials"] == {"2/3": second}  # recomputed exactly
    write_shard(tmp_path / "s2", 2, 3)
    status = main(["merge", str(tmp_path / "out"), *(str(tmp_path / f"s{i}") for i in (1, 2, 3))])
    assert status == 0  # merging again replaces the earlier merge
    assert sorted(r.trial_id for r in RunDir(tmp_path / "out").latest()) == sorted(collection())
    assert RunDir(tmp_path / "out").card()["merge"]["partial"] is False


def test_unfinished_trials_of_a_shard_are_listed(tmp_path):
    share = write_shard(tmp_path / "s1", 1, 2)
    write_shard(tmp_path / "s2", 2, 2)
    write_shard(tmp_path / "s1b", 1, 2, skip=set(share[:3]))
    merged = merge(tmp_path / "out", [tmp_path / "s1b", tmp_path / "s2"])
    trials = collection()
    assert merged.partial and merged.missing_trials["1/2"] == sorted(trial_key(*trials[t][:1], trials[t][1].id)
                                                                     for t in share[:3])
    assert any("finish it with --hb-resume" in line for line in merged.lines())


def test_duplicates_are_resolved_as_resume_resolves_them(tmp_path):
    """A trial in two directories: attempts by finish time up to the first outside infra; later ones left out."""
    trials = collection()
    (a_id, (task_a, case_a)), (b_id, (task_b, case_b)) = list(trials.items())[:2]
    first, second = RunStore(tmp_path / "r1"), RunStore(tmp_path / "r2")
    plan_1 = {"index": 1, "total": 1}
    first.write_card(card("r1", plan_1))
    second.write_card(card("r2", plan_1))
    first.append(record("r1", a_id, task_a, case_a, "infra", "2026-12-06T01:00:00Z"))
    second.append(record("r2", a_id, task_a, case_a, "passed", "2026-12-06T02:00:00Z"))
    first.append(record("r1", b_id, task_b, case_b, "failed", "2026-12-06T01:00:01Z"))
    second.append(record("r2", b_id, task_b, case_b, "passed", "2026-12-06T02:00:01Z"))
    first.close(), second.close()
    merged = merge(tmp_path / "out", [tmp_path / "r2", tmp_path / "r1"])
    assert merged.duplicates == 1
    records = RunDir(tmp_path / "out").records()
    assert [(r.trial_id, r.outcome, r.attempts) for r in records if r.trial_id == a_id] == \
        [(a_id, "infra", 1), (a_id, "passed", 2)]  # the infra attempt superseded, as --hb-resume-retry infra does
    assert [(r.outcome, r.run_id) for r in records if r.trial_id == b_id] == [("failed", "r1")]


def test_merge_refuses_to_overwrite_what_it_did_not_write(tmp_path, capsys):
    write_shard(tmp_path / "s1", 1, 1)
    write_shard(tmp_path / "other", 1, 1)
    with pytest.raises(SystemExit) as exited:
        main(["merge", str(tmp_path / "other"), str(tmp_path / "s1")])
    assert exited.value.code == 2 and "exists and is not an earlier merge" in capsys.readouterr().err
    assert len(RunDir(tmp_path / "other").records()) == len(collection())  # untouched
    with pytest.raises(SystemExit) as exited:
        main(["merge", str(tmp_path / "s1x"), str(tmp_path / "s1"), str(tmp_path / "nowhere")])
    assert exited.value.code == 2 and "nowhere: no such directory" in capsys.readouterr().err


def test_summary_of_a_merged_run_names_its_hosts_and_tests_them(tmp_path, capsys):
    write_shard(tmp_path / "s1", 1, 2)
    write_shard(tmp_path / "s2", 2, 2)
    merge(tmp_path / "out", [tmp_path / "s1", tmp_path / "s2"])
    assert main(["summary", str(tmp_path / "out")]) == 0
    said = capsys.readouterr().out
    assert "hosts: the shards ran on 2 machines (host-run1" in said
    assert "not testable" in said  # every cell ended one way on both hosts
    assert "oracle:lean" in said and "run directory:" in said


def test_summary_of_a_one_host_run_says_nothing_of_hosts(tmp_path, capsys):
    write_shard(tmp_path / "s1", 1, 2, run_id="same")
    write_shard(tmp_path / "s2", 2, 2, run_id="same2", provenance={"host": "one"})
    document = json.loads((tmp_path / "s1" / "harness.json").read_text())
    document["provenance"]["host"] = "one"
    RunStore(tmp_path / "s1").write_card(document)
    merge(tmp_path / "out", [tmp_path / "s1", tmp_path / "s2"])
    assert main(["summary", str(tmp_path / "out")]) == 0
    assert "hosts:" not in capsys.readouterr().out


def test_gate_command_exits_as_a_gated_session(tmp_path, capsys):
    write_shard(tmp_path / "s1", 1, 2)
    write_shard(tmp_path / "s2", 2, 2)
    merge(tmp_path / "out", [tmp_path / "s1", tmp_path / "s2"])
    status = main(["gate", str(tmp_path / "out"), "--baseline", "oracle:lean", "--margin", "score:3pt"])
    said = capsys.readouterr().out
    document = json.loads((tmp_path / "out" / "gate.json").read_text())
    assert status == document["exit_status"] == 1  # nop fails every task that oracle:lean passes
    assert document["status"] == "fail" and "gate vs oracle:lean: FAIL — exit status 1" in said
    assert {v["multiplier"] for v in document["verdicts"]} == {"1x", "3x"}
    assert main(["gate", str(tmp_path / "out"), "--baseline", "oracle:lean", "--at", "3"]) == 1
    assert {v["multiplier"] for v in json.loads((tmp_path / "out" / "gate.json").read_text())["verdicts"]} == {"3x"}


@pytest.mark.parametrize("args, message", [
    (["--baseline", "oracle:heavy"], "--baseline 'oracle:heavy' is not one of --models (oracle:lean, nop)"),
    (["--baseline", "nop", "--margin", "score"], "--margin"),
    (["--baseline", "nop", "--at", "5"], "--at '5': name one of --multipliers (1x, 3x)"),
    (["--baseline", "nop", "--strict", "--accept-inconclusive"], "--strict and --accept-inconclusive contradict"),
])
def test_gate_command_usage_errors_are_one_line_in_its_own_words(tmp_path, capsys, args, message):
    write_shard(tmp_path / "s1", 1, 1)
    with pytest.raises(SystemExit) as exited:
        main(["gate", str(tmp_path / "s1"), *args])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and len(err.strip().splitlines()) == 1, err
