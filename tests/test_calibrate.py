"""Calibration from plain records: the recommended kill threshold and the memory headroom per task."""

import re
from pathlib import Path

import pytest

from pytest_harnessbench.calibrate import calibrate, lines, recommend
from pytest_harnessbench.records import TrialRecord

MIB = 1024**2
README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def record(task, mult, outcome, peak_mib=None, spec_mib=64, sample=1, cause=None, model="oracle:heavy"):
    killed = outcome == "infra" and cause == "oom"
    return TrialRecord.from_dict({
        "task_id": f"example_suite/{task}.py::{task}", "model": model, "multiplier": mult, "sample": sample,
        "outcome": outcome, "cause": cause, "trial_id": f"{task}-{mult}-{sample}",
        "allocation": {"guarantee": {"memory_bytes": spec_mib * MIB}},
        "resources": {"peak_memory_bytes": int((peak_mib or 0) * MIB), "oom_kills": int(killed)}})


def readme_peaks() -> dict[str, tuple[float, float, float, float]]:
    """The heavy variant's (spec, median, min, max) per task, in MiB, from the README's example-suite table."""
    peaks = {}
    for m in re.finditer(r"^(test_\w+)\s+heavy\s+(\d+)Mi\s+([\d.]+)Mi\s+([\d.]+)–\s*([\d.]+)Mi", README, re.M):
        peaks[m[1]] = tuple(float(x) for x in m.groups()[1:])
    assert len(peaks) == 6
    return peaks


def example_sweep(samples=3):
    """oracle:heavy as the example bake-off runs it: killed at 1x (peak = the limit), passing above it with the
    README's peaks (its min, median and max as the three samples)."""
    records = []
    for task, (spec, median, low, high) in readme_peaks().items():
        for k, peak in enumerate((low, median, high)[:samples], 1):
            records.append(record(task, "1x", "infra", spec, spec, k, "oom"))
            records.append(record(task, "3x", "passed", peak, spec, k))
            records.append(record(task, "uncapped", "passed", peak, spec, k))
    return records


def test_the_example_bake_off_recommends_3x_with_the_readme_peaks_as_headroom():
    document = calibrate(example_sweep(), ["oracle:heavy"])
    (rec,) = document["recommendations"]
    assert (rec["multiplier"], rec["status"]) == ("3x", "recommended")
    assert [(t["metric"], t["multiplier"]) for t in rec["tests"]] == [
        ("infra_rate", "3x"), ("pass_rate", "3x"), ("infra_rate", "uncapped"), ("pass_rate", "uncapped")]
    peaks = readme_peaks()
    for room in document["headroom"]:
        spec, median, _, high = peaks[room["task_id"].rsplit("::", 1)[1]]
        assert round(room["median"], 2) == round(median / spec, 2)
        assert round(room["needed"]["95%"], 2) == round(room["needed"]["99%"], 2) == round(high / spec, 2)
        assert room["killed"] == 3 and room["trials"] == 6 and room["under_specified"]
    text = "\n".join(lines(document))
    assert "oracle:heavy: 3x" in text and "p raw → adjusted: infra@3x <0.0001 → <0.0001" in text
    assert "test_link_firmware [oracle:heavy]" in text
    assert max(map(len, lines(document, verbose=True))) <= 100


def test_no_infra_at_1x_recommends_1x():
    records = [record(f"t{t}", mult, "passed", 10, model="oracle:lean", sample=k)
               for t in range(3) for mult in ("1x", "3x") for k in (1, 2)]
    rec = recommend(records, "oracle:lean")
    assert (rec.multiplier, rec.status) == ("1x", "no_headroom_needed")
    assert not calibrate(records)["headroom"][0]["under_specified"]


def test_two_samples_cannot_decide_and_say_how_many_are_needed():
    records = [r for r in example_sweep() if r.task_id.endswith("test_sort_numbers") and r.sample <= 2]
    rec = recommend(records, "oracle:heavy")
    assert rec.multiplier is None and rec.status == "cannot_decide"
    assert rec.samples_needed and rec.samples_needed > 2
    assert f"about {rec.samples_needed} samples per task" in rec.reason and "too few trials" in rec.reason


def test_infra_that_falls_only_where_the_score_moves_is_no_band():
    # 1x: a third infra, the rest fail; 3x: no infra, everything passes — headroom makes the model solve it
    records = [record(f"t{t}", "1x", "infra" if k == 1 else "failed", cause="oom" if k == 1 else "assertion",
                      sample=k) for t in range(8) for k in (1, 2, 3)]
    records += [record(f"t{t}", "3x", "passed", 10, sample=k) for t in range(8) for k in (1, 2, 3)]
    rec = recommend(records, "oracle:heavy")
    assert rec.multiplier is None and rec.status == "no_band"


def test_a_sweep_without_1x_cannot_decide():
    rec = recommend([record("t", "3x", "passed", 10), record("t", "uncapped", "passed", 10)], "oracle:heavy")
    assert rec.status == "cannot_decide" and "needs trials at 1x" in rec.reason


def test_the_command_line_help_names_the_installed_command_and_prints_percent_signs(capsys):
    """Issue 21: `harnessbench --help` said `usage: python -m pytest_harnessbench`, calibrate's help `95%%`."""
    from pytest_harnessbench.__main__ import main

    for argv in (["--help"], ["calibrate", "--help"]):
        with pytest.raises(SystemExit) as done:
            main(argv)
        assert done.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: harnessbench ") and "usage: harnessbench calibrate " in out
    assert "95%/99%" in " ".join(out.split()) and "%%" not in out
