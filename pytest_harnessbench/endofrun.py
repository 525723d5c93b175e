"""The end of a run: gate, calibration, HTML report and export, as steps that read the run's records.

Each step reads what the recorder holds (``Recorder.latest``) or the run directory, writes its own file
(gate.json, calibration.json, the report, the upload) and returns what the summary prints. They run in
the process that records, once every trial has finished (:meth:`EndOfRun.run`); the gate's plan is made
before the first trial (:meth:`EndOfRun.plan_gate`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .store import RunDir
from .trial import Case, utc_now

if TYPE_CHECKING:
    from pathlib import Path

    from .config import Config
    from .recorder import Recorder
    from .records import TrialRecord


@dataclass
class Outputs:
    """What the end-of-run steps give the summary: lines to print, and the export's result."""

    gate_lines: list[str] | None = None
    calibration_lines: list[str] | None = None
    report_line: str | None = None
    export: object = None  # export.langsmith.ExportResult, or None (not configured)
    summary: object = None  # summary.Summary, computed once for the HTML report and the terminal
    exit_status: int = 0


class EndOfRun:
    """The steps after the last trial, reading the records of ``recorder`` (its run directory: ``run_dir``)."""

    def __init__(self, config: Config, recorder: Recorder, run_dir: Path):
        self.config = config
        self.recorder = recorder
        self.run_dir = run_dir
        self.gate_exit = 0  # the gate's exit status (gate.exit_status), once it ran
        self.gate_plans: list = []  # what the gate can decide (gate.GatePlan), from the collected trials
        self.calibration: dict | None = None  # calibration.json's document, once run_calibration computed it
        self.sequential = None  # sequential.SequentialRun under --hb-gate-sequential (the session sets it)
        self._compare_records: list[TrialRecord] | None = None

    def run(self, exit_status: int, other_failures: int, verbose: bool = False,
            summarize: Callable[[], object] | None = None, stream=None) -> Outputs:
        """Every step in order; ``exit_status``: pytest's so far (the gate may decide it instead).

        ``summarize`` computes the run's summary model (after calibration, which it shows) once, for the
        HTML report here and the terminal afterwards (``Outputs.summary``); ``stream``: the
        :meth:`upload_stream` that sent trials as they finished, if any (the export sends what it left)."""
        outputs = Outputs(calibration_lines=self.run_calibration(verbose=verbose))
        outputs.summary = summarize() if summarize is not None else None
        outputs.gate_lines = self.run_gate(getattr(outputs.summary, "reliability", None))
        outputs.report_line = self.write_report(outputs.summary)
        outputs.exit_status = self.exit_status(exit_status, other_failures)
        outputs.export = self.export(stream)
        return outputs

    def exit_status(self, current: int, other_failures: int) -> int:
        """With a gate, the exit status is the gate's: trial failures alone don't fail the run.

        Failures of ordinary (non-trial) tests still do, and an interrupted or
        broken session keeps its own status.
        """
        if self.config.gate is None or current not in (0, 1):
            return current
        return 1 if other_failures else self.gate_exit

    def plan_gate(self, cases: Iterable[Case]) -> list[str]:
        """Before the first trial: what the gate can decide with the collected tasks × samples.

        Rate margins only: a trial metric's spread is unknown before the run. The plan goes to gate.json with
        the verdicts (:meth:`run_gate`); writing it now would create the run directory of a session that may
        yet end in a usage error.
        """
        cfg = self.config
        if cfg.gate is None:
            return []
        from .gate import INCONCLUSIVE_EXIT_STATUS, plan

        per_cell = Counter(case.cell for case in cases if case.sample == 1)
        tasks = max(per_cell.values(), default=0)
        self.gate_plans = [plan(m, tasks, cfg.samples, cfg.gate_alpha) for m in cfg.gate_margins if not m.absolute]
        lines = [p.line for p in self.gate_plans]
        if cfg.gate_strict:
            lines.append(f"gate: an INCONCLUSIVE verdict fails this run, exit status {INCONCLUSIVE_EXIT_STATUS} "
                         f"({cfg.gate_strict_why})")
        else:
            why = cfg.gate_strict_why or "no CI variable"
            lines.append(f"gate: an INCONCLUSIVE verdict exits 0 here ({why}); --hb-gate-strict makes it "
                         f"exit {INCONCLUSIVE_EXIT_STATUS}")
        return lines

    def baseline_records(self) -> list[TrialRecord] | None:
        """The baseline's records of ``--hb-compare`` (read once), or None: this run's own."""
        if self.config.compare is not None and self._compare_records is None:
            self._compare_records = RunDir(self.config.compare).latest()
        return self._compare_records

    def run_gate(self, reliability: dict | None = None) -> list[str] | None:
        """Gate verdicts as summary lines (and gate.json); None when no gate is configured.

        ``reliability``: the summary model's pass@k / pass^k block (``Summary.reliability``), which gate.json
        carries (computed here when not given). Under --hb-gate-sequential the verdicts are the sequential
        gate's, and gate.json's ``sequential`` block says where it stopped and what that saved.
        Sets ``gate_exit``: the run's exit status as the gate decides it (0, 1 or 6).
        """
        cfg = self.config
        if cfg.gate is None:
            return None
        multipliers = [cfg.gate_at.label] if cfg.gate_at else [m.label for m in cfg.multipliers]
        pairs = None  # the fixed gate's, computed by decide_gate
        if self.sequential is not None:
            pairs = [(mult, v) for mult, v, _ in self.sequential.final(self.recorder.latest(), self.baseline_records())]
        document, lines = decide_gate(self.recorder.latest(), cfg.gate, cfg.gate_margins, multipliers,
                                      alpha=cfg.gate_alpha, strict=cfg.gate_strict, compare=cfg.compare, pairs=pairs)
        document["plan"] = [p.to_dict() for p in self.gate_plans]
        if reliability is None:
            from .reliability import summarize

            latest = self.recorder.latest()
            reliability = summarize(latest, [*self.recorder.earlier_attempts(), *latest])
        document["reliability"] = reliability
        if self.sequential is not None:
            document["sequential"] = self.sequential.to_json(self.recorder.latest())
        self.recorder.write_json("gate.json", document)
        self.gate_exit = document["exit_status"]
        from .report import sequential_lines

        return lines + sequential_lines(document.get("sequential"), prices=bool(cfg.prices))

    def run_calibration(self, verbose: bool = False) -> list[str] | None:
        """Calibration block for the summary (and calibration.json); None unless --hb-calibrate."""
        if not self.config.calibrate:
            return None
        from .calibrate import calibrate, lines

        document = calibrate(self.recorder.latest(), [m.text for m in self.config.models])
        self.recorder.write_json("calibration.json", document)
        self.calibration = document
        return lines(document, verbose)

    def write_report(self, summary=None) -> str | None:
        """Write the --hb-report HTML from the run directory (and the run's ``summary`` model, if computed);
        the summary line saying where (or why not)."""
        if self.config.report is None:
            return None
        from .html_report import write

        self.recorder.write_card(finished_at=utc_now())
        try:
            path = write(RunDir(self.run_dir), self.config.report, models=[m.text for m in self.config.models],
                         multipliers=[m.label for m in self.config.multipliers], summary=summary)
        except OSError as exc:
            return f"report: cannot write {self.config.report}: {exc}"
        return f"report: {path} ({path.stat().st_size / 1e6:.1f} MB)"

    def langsmith_on(self) -> bool:
        """LangSmith is configured: --hb-langsmith, or its environment (export/langsmith.py: enabled)."""
        import os

        from .export.langsmith import enabled

        return self.config.langsmith or enabled(os.environ)

    def upload_stream(self):
        """A :class:`~pytest_harnessbench.export.experiments.Streamer` that sends trials as they finish, when
        LangSmith is configured in experiments mode; else None."""
        if not self.langsmith_on() or self.config.langsmith_mode != "experiments":
            return None
        from .export.experiments import Streamer

        return Streamer(self.run_dir, dataset=self.config.langsmith_dataset)

    def export(self, stream=None):
        """Upload the run (what ``stream`` did not send) to LangSmith if configured; returns the ExportResult or None."""
        if not self.langsmith_on():
            return None
        self.recorder.write_card(finished_at=utc_now())
        if self.config.langsmith_mode == "experiments":
            from .export.experiments import upload_experiments

            return upload_experiments(self.run_dir, dataset=self.config.langsmith_dataset, streamer=stream,
                                      timeout_s=self.config.langsmith_timeout)
        from .export.langsmith import export_run

        return export_run(self.run_dir, project=self.config.langsmith_project, timeout_s=self.config.langsmith_timeout)


def decide_gate(records, baseline: str, margins, multipliers: list[str], *, alpha: float, strict: bool,
                compare: Path | None = None, pairs: list | None = None) -> tuple[dict, list[str]]:
    """The gate over ``records`` at ``multipliers``: gate.json's document (without the plan) and the summary's
    lines. The session's gate (:meth:`EndOfRun.run_gate`) and ``harnessbench gate`` (downstream.py) both.

    ``pairs``: (multiplier, verdict) already decided (the sequential gate's); by default the fixed gate's."""
    from .gate import INCONCLUSIVE_EXIT_STATUS, evaluate, verdicts_to_json
    from .report import gate_lines

    if pairs is None:
        earlier = RunDir(compare).latest() if compare else None
        pairs = evaluate(records, baseline, margins, multipliers=multipliers, alpha=alpha, strict=strict,
                         baseline_records=earlier)
    document = verdicts_to_json([v for _, v in pairs])
    for entry, (mult, _) in zip(document["verdicts"], pairs):
        entry["multiplier"] = mult
    if not pairs:  # nothing could be compared: that decides nothing, and blocks
        document.update(status="inconclusive", blocks=True, exit_status=INCONCLUSIVE_EXIT_STATUS)
    return document, gate_lines(document, pairs, baseline=baseline, compare=compare)
