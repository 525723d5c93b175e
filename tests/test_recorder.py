"""The session's writer, without a pytest run: redaction, the card, and a disk that stops accepting writes."""

from pytest_harnessbench.recorder import Recorder
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.redact import Redactor
from pytest_harnessbench.store import RunDir

SECRET = "sk-test-1234567890"


def recorder(run_dir, previous=None):
    return Recorder(run_dir, Redactor.from_environ({"MY_API_KEY": SECRET}),
                    lambda finished_at: {"run_id": "r", "finished_at": finished_at}, previous)


def test_records_and_trajectories_are_written_redacted_with_the_card_first(tmp_path):
    rec = recorder(tmp_path / "run", previous=[TrialRecord.from_dict({"trial_id": "old", "attempts": 1})])
    record = TrialRecord.from_dict({"trial_id": "t", "attempts": 1, "message": f"token={SECRET}"})
    rec.add(record)
    rec.save_trajectory(record, {"trajectories": [{"output": SECRET}]})
    run = RunDir(tmp_path / "run")
    assert run.card() == {"run_id": "r", "finished_at": None, "trials_recorded": 2}
    assert SECRET not in (tmp_path / "run" / "trials" / "t.json").read_text()
    assert SECRET not in (tmp_path / "run" / "results.jsonl").read_text()
    rec.close(finished_at="end")
    assert run.card()["finished_at"] == "end" and [r.trial_id for r in rec.latest()] == ["old", "t"]


def test_a_run_directory_that_cannot_be_written_is_an_error_kept_not_raised(tmp_path):
    (tmp_path / "afile").write_text("")
    rec = recorder(tmp_path / "afile" / "run")
    rec.add(TrialRecord.from_dict({"trial_id": "t", "attempts": 1}))
    rec.write_json("gate.json", {})
    assert rec.records == [TrialRecord.from_dict({"trial_id": "t", "attempts": 1})]
    assert rec.storage_error.startswith(f"cannot write the run directory {tmp_path / 'afile' / 'run'} (")
