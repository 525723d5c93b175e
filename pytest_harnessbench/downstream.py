"""What a session computes at its end, from a run directory alone: the summary and the gate.

For ``harnessbench summary`` and ``harnessbench gate`` on a finished run or on
a merged one (``harnessbench merge``): the same report and gate code as the
session (the summary model: summary.summarize, formatted by report.render;
the gate: endofrun.decide_gate), with the models and multipliers from the
run's card, so a CI job after a matrix of shards decides as a single session
would have.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .store import RunDir

if TYPE_CHECKING:
    from .records import TrialRecord


def settings(run: RunDir) -> dict:
    return (run.card() or {}).get("settings") or {}


def ordered(records: list[TrialRecord], models: Sequence[str], multipliers: Sequence[str]) -> list[TrialRecord]:
    """Records in the order of the experiment (model, multiplier, trial, attempt), not of completion: the
    gate's lines then come out the same for any schedule, merged or not."""
    rank_m, rank_x = {m: i for i, m in enumerate(models)}, {x: i for i, x in enumerate(multipliers)}
    return sorted(records, key=lambda r: (rank_m.get(r.model, len(rank_m)), r.model,
                                          rank_x.get(r.multiplier, len(rank_x)), r.multiplier, r.trial_id,
                                          r.attempts))


@dataclass
class GateResult:
    document: dict  # as the session writes gate.json
    lines: list[str]

    @property
    def exit_status(self) -> int:
        return self.document["exit_status"]


def run_gate(run: RunDir, gate: dict) -> GateResult:
    """The gate over the run's records, as the session's (``EndOfRun.run_gate``) decides it; ``gate``:
    ``config.parse_gate``'s result."""
    from .endofrun import decide_gate

    chosen = settings(run)
    models, multipliers = chosen.get("models") or [], chosen.get("multipliers") or []
    at = [gate["gate_at"].label] if gate.get("gate_at") else list(multipliers)
    document, lines = decide_gate(ordered(run.latest(), models, multipliers), gate["gate"], gate["gate_margins"],
                                  at, alpha=gate["gate_alpha"], strict=gate["gate_strict"],
                                  compare=gate.get("compare"))
    return GateResult(document, lines)


def parse_gate_options(run: RunDir, raw: dict) -> dict:
    """``config.parse_gate`` with the run's own models and multipliers. Raises ConfigError."""
    from .config import parse_gate, parse_models, parse_multipliers

    chosen = settings(run)
    models = parse_models(",".join(chosen.get("models") or [])) if chosen.get("models") else ()
    multipliers = parse_multipliers(",".join(chosen.get("multipliers") or [])) if chosen.get("multipliers") else ()
    # The fixed gate (a merged run is read whole: nothing is left to stop early), against the run's own samples.
    fixed = {"gate_sequential": "false", "samples": str(chosen.get("samples") or 1)}
    return parse_gate({**fixed, **raw}, models, multipliers)


def session_gate(run: RunDir) -> dict | None:
    """The gate the session ran with (its card's settings), as ``parse_gate_options`` input; None if ungated."""
    gate = settings(run).get("gate")
    if not gate:
        return None
    return {"gate": gate["baseline"], "gate_at": gate.get("at") or "", "gate_margin": ",".join(gate["margins"]),
            "gate_alpha": str(gate["alpha"]), "gate_strict": str(bool(gate.get("strict"))).lower(),
            "gate_accept_inconclusive": "false", "compare": gate.get("compare") or ""}


def summary_lines(run: RunDir, *, verbose: bool = False, width: int = 100) -> list[str]:
    """The session's harnessbench section: the summary model (with the hosts of a merged run) as the terminal
    shows it, the gate as the session ran it, and what a merge found missing."""
    from .report import render
    from .store import latest
    from .summary import summarize

    card = run.card() or {}
    chosen = settings(run)
    models, multipliers = chosen.get("models") or [], chosen.get("multipliers") or []
    records = run.records()
    final = latest(records)
    last = set(map(id, final))
    gate_lines: list[str] = []
    raw = session_gate(run)
    if raw is not None:
        gate_lines = run_gate(run, parse_gate_options(run, raw)).lines
    host_of = {s.get("run_id"): s.get("host") or "?" for s in card.get("shards") or ()}
    summary = summarize(final, models=models, multipliers=multipliers,
                        superseded=[r for r in records if id(r) not in last], host_of=host_of)
    lines = render(summary, run_dir=str(run.path), gate_lines=gate_lines, verbose=verbose, width=width)
    merge = card.get("merge") or {}
    if merge.get("partial"):
        missing = merge.get("missing") or {}
        trials = sum(len(ids) for ids in (missing.get("trials") or {}).values())
        shards = missing.get("shards") or []
        lines.append(f"PARTIAL RUN: merged {len(merge.get('shards_present') or [])} of {merge.get('shards_total')} "
                     f"shard(s)" + (f"; missing shard(s) {', '.join(shards)}" if shards else "")
                     + (f"; {trials} trial(s) missing (harness.json: merge.missing)" if trials else "")
                     + "; run or resume them, then merge again")
    return lines
