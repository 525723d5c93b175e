"""The pure parsing of benchmarks/bench_harbor.py and scripts/harbor_offline.py (both run by hand, not in CI)."""

import tomllib

from benchmarks.bench_harbor import Row, Trial, harbor_network_public, harbor_trial, our_trial, ratio_summary


def test_no_network_tasks_are_made_public_for_harbor_and_nothing_else_changes():
    toml = ('[environment]\ncpus = 1\nnetwork_mode = "no-network"\n'
            '[metadata]\nnote = "network_mode = \'no-network\' stays in a string"\n')
    staged = tomllib.loads(harbor_network_public(toml))
    assert staged["environment"] == {"cpus": 1, "network_mode": "public"}
    assert staged["metadata"]["note"] == "network_mode = 'no-network' stays in a string"
    assert tomllib.loads(harbor_network_public("[environment]\nallow_internet = false\n")) == \
        {"environment": {"allow_internet": True}}


def test_a_harbor_result_gives_rewards_its_trial_clock_and_the_plugins_verdict():
    result = {"started_at": "2026-12-06T03:53:47.031017Z", "finished_at": "2026-12-06T03:54:01.208254Z",
              "verifier": {"finished_at": "2026-12-06T03:53:50.794513Z"},
              "verifier_result": {"rewards": {"reward": 1.0}}, "exception_info": None}
    trial = harbor_trial(result)
    assert trial.passed and trial.rewards == {"reward": 1.0}
    assert abs(trial.seconds - 14.177237) < 1e-6 and abs(trial.teardown_s - 10.413741) < 1e-6
    two_keys = harbor_trial({**result, "verifier_result": {"rewards": {"parses": 1.0, "correct": 0.0}}})
    assert not two_keys.passed and two_keys.verdict == "reward correct=0,parses=1"


def test_a_harbor_error_without_rewards_is_an_error_verdict_with_its_message():
    result = {"started_at": None, "finished_at": None, "verifier_result": None,
              "exception_info": {"exception_type": "RuntimeError", "exception_message": "chdir failed\nmore"}}
    trial = harbor_trial(result)
    assert (trial.verdict, trial.seconds, trial.rewards) == ("error: RuntimeError", None, None)
    assert trial.detail.startswith("chdir failed")


def test_our_records_give_task_name_model_and_verdict():
    record = {"task_id": "word-count/task.toml::word-count", "model": "nop", "outcome": "failed",
              "cause": "assertion", "rewards": {"reward": 0.0}, "timing": {"total_s": 0.9}, "message": "AssertionError"}
    assert our_trial(record) == ("word-count", "nop", Trial({"reward": 0.0}, 0.9, "reward 0"))
    oom = {**record, "model": "oracle", "outcome": "infra", "cause": "oom", "rewards": None,
           "message": "OOM kill in the sandbox"}
    assert our_trial(oom)[2] == Trial(None, 0.9, "infra/oom", "OOM kill in the sandbox")


def test_agreement_counts_passes_and_the_ratio_is_of_medians():
    row = Row("t", "oracle", harbor=[Trial(None, 15.0, "reward 0")], ours=[Trial(None, 1.0, "infra/oom")])
    assert row.agree  # neither passed: the verdicts agree though the causes differ
    other = Row("u", "oracle", harbor=[Trial(None, 13.0, "error: RuntimeError")], ours=[Trial({}, 3.0, "passed")])
    assert not other.agree
    assert ratio_summary([row, other]) == {"harbor_median_s": 14.0, "ours_median_s": 2.0, "ratio": 7.0,
                                           "harbor_teardown_median_s": None}


def test_offline_preparation_points_every_from_line_at_the_offline_image():
    from scripts.harbor_offline import point_from_lines_at

    dockerfile = "FROM ubuntu:24.04\nRUN apt-get update\nfrom --platform=linux/amd64 python:3.13-slim AS build\nWORKDIR /app\n"
    assert point_from_lines_at(dockerfile, "offline:1") == \
        "FROM offline:1\nRUN apt-get update\nfrom offline:1 AS build\nWORKDIR /app\n"
