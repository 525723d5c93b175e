"""The harness card and trial records as data: no pytest run needed."""

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest

from pytest_harnessbench.agents.defaults import fingerprint
from pytest_harnessbench.records import Timing, TrialRecord, harness_card
from pytest_harnessbench.store import RunDir

DATA = Path(__file__).parent / "data"


def card(**settings):
    return harness_card(run_id="r", started_at="t", settings=settings, backend={"backend": "local"},
                        harness=fingerprint(settings.get("max_steps")), concurrency=1, plugin_version="0", args=[])


def test_the_cards_retry_policy_says_what_retry_infra_does():
    """Issue 17: the card said 're-run only on request' whatever --hb-retry-infra was."""
    assert card(retry_infra=2)["retry_policy"]["infra_trials"].startswith("re-run up to 2 more time(s) in the same")
    assert card(retry_infra=0)["retry_policy"]["infra_trials"].startswith("not re-run in the session")


def test_the_card_holds_the_harness_fingerprint_the_agents_give():
    harness = card(max_steps=7)["harness"]
    assert harness == fingerprint(7) and harness["max_steps"] == 7 and len(harness["toolset_sha256"]) == 64


def test_the_records_module_imports_nothing_of_the_agent_harness():
    """Issue 22: records.py built the card from agents/defaults.py; the agents now give their own fingerprint."""
    code = ("import sys, pytest_harnessbench.records; "
            "print(sorted(m for m in sys.modules if m.startswith('pytest_harnessbench.agents')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def _lines(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines()]


@pytest.mark.parametrize("name", ["results-d4030c8.jsonl", "results-before-issue-12.jsonl"])
def test_records_of_earlier_runs_load_and_write_back_what_they_hold(tmp_path, name):
    """results.jsonl of a run made before TrialRecord (d4030c8), and with the fields records had before issue 12
    (no multiplier_factor, metrics, rewards, timeout_phase), read through RunDir."""
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.jsonl").write_text((DATA / name).read_text())
    records = RunDir(run).records()
    raw = _lines(name)
    assert [r.trial_id for r in records] == [r["trial_id"] for r in raw] and len(records) == 9
    assert all(isinstance(r, TrialRecord) and isinstance(r.timing, Timing) for r in records)
    for record, data in zip(records, raw):
        written = record.to_dict()
        assert {k: v for k, v in written.items() if k in data and k != "timing"} == \
            {k: v for k, v in data.items() if k != "timing"}
        assert {k: written["timing"][k] for k in data["timing"]} == data["timing"]
    factors = {r.multiplier: r.multiplier_factor for r in records}
    assert factors == {"1x": 1.0, "3x": 3.0, "uncapped": None}
    assert {(r.outcome, r.cause) for r in records} == {("passed", None), ("failed", "assertion"), ("infra", "oom")}


def test_a_record_is_frozen_and_keeps_its_own_timing():
    timing = Timing(agent_s=1.0)
    record = TrialRecord.from_dict({"trial_id": "t", "timing": dataclasses.asdict(timing)})
    with pytest.raises(dataclasses.FrozenInstanceError):
        record.outcome = "passed"
    live = TrialRecord(run_id="r", trial_id="t", task_id="k", model="m", multiplier="1x", multiplier_factor=1.0,
                       sample=1, outcome="passed", cause=None, message="", allocation={}, enforcement="",
                       backend="local", resources={}, timing=timing)
    timing.agent_s = 5.0  # the trial's stopwatch runs on; the record keeps what it read
    assert live.timing.agent_s == 1.0
    assert TrialRecord.from_dict(json.loads(json.dumps(live.to_dict()))) == live


def test_a_bad_multiplier_label_of_an_older_record_is_named():
    with pytest.raises(ValueError, match="bad multiplier label 'lots'"):
        TrialRecord.from_dict({"trial_id": "t", "multiplier": "lots"})
