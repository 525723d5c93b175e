"""The summary model: computed once from the records, the same figures as the record-level statistics."""

import json
import random

from pytest_harnessbench import stats
from pytest_harnessbench.records import TrialRecord
from pytest_harnessbench.summary import summarize


def records(seed=3):
    rng = random.Random(seed)
    out = []
    for t in range(8):
        for model in ("a", "b"):
            for mult, factor in (("1x", 1.0), ("3x", 3.0), ("uncapped", None)):
                for k in (1, 2):
                    outcome = rng.choice(["passed", "passed", "failed", "infra", "error"])
                    out.append(TrialRecord.from_dict({
                        "trial_id": f"t{t}-{model}-{mult}-{k}", "task_id": f"t{t}", "model": model,
                        "multiplier": mult, "multiplier_factor": factor, "sample": k, "outcome": outcome,
                        "cause": {"failed": "assertion", "infra": "oom", "error": "harness"}.get(outcome),
                        "metrics": {"steps": rng.randint(1, 9)} if outcome in ("passed", "failed") else {}}))
    return out


def test_the_cells_and_pairs_are_what_the_record_level_functions_give():
    rs = records()
    summary = summarize(rs, models=["b", "a"], multipliers=["1x", "3x", "uncapped"])
    assert summary.models == ["b", "a"] and summary.multipliers == ["1x", "3x", "uncapped"]
    assert list(summary.cells) == [(m, x) for m in ("b", "a") for x in ("1x", "3x", "uncapped")]
    assert summary.cells == {key: cell for key, cell in stats.summarize(rs).items()}
    pair = next(c for c in summary.comparisons if c.label == "@3x: score a − b")
    direct = stats.paired_comparison([r for r in rs if (r.model, r.multiplier) == ("b", "3x")],
                                     [r for r in rs if (r.model, r.multiplier) == ("a", "3x")], "score")
    assert (pair.difference, pair.pvalue) == (direct.difference, direct.pvalue)
    steps = next(c for c in summary.metric_comparisons if (c.metric, c.multiplier) == ("steps", "1x"))
    direct = stats.paired_metric_comparison([r for r in rs if (r.model, r.multiplier) == ("b", "1x")],
                                            [r for r in rs if (r.model, r.multiplier) == ("a", "1x")], "steps")
    assert steps.comparison == direct


def test_results_are_strict_json_and_take_what_a_hook_adds():
    summary = summarize(records(), models=["a", "b"], multipliers=["1x", "3x", "uncapped"], calibration=True)
    summary.add_table("extra table", ["x"], [[1]])
    summary.extra["confounders"] = {"host_load": "low"}
    data = json.loads(json.dumps(summary.results(), allow_nan=False))
    assert {c["model"] for c in data["cells"]} == {"a", "b"} and data["trials"] == 96
    assert data["calibration"]["recommendations"][0]["model"] == "a"
    assert data["tables"] == [{"title": "extra table", "header": ["x"], "rows": [["1"]]}]
    assert data["confounders"] == {"host_load": "low"}
