"""The terminal summary: rows built as data from records, rendered at the end.

The table depends only on the set of records and the configured order of
models and multipliers, so it is identical however the trials were scheduled.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Iterable, Sequence

from .outcomes import ERROR, FAILED, INFRA, PASSED
from .records import TrialRecord
from .stats import wilson_interval


@dataclass(frozen=True)
class Row:
    model: str
    multiplier: str
    trials: int
    passed: int
    failed: int
    infra: int
    infra_causes: tuple[tuple[str, int], ...]
    errors: int

    @classmethod
    def of(cls, model: str, multiplier: str, records: Sequence[TrialRecord]) -> Row:
        outcomes = Counter(r.outcome for r in records)
        causes = Counter(r.cause for r in records if r.outcome == INFRA)
        return cls(model, multiplier, len(records), outcomes[PASSED], outcomes[FAILED], outcomes[INFRA],
                   tuple(sorted(causes.items())), outcomes[ERROR])


def _order(values: Iterable[str], preferred: Sequence[str]) -> list[str]:
    seen = list(dict.fromkeys(values))
    return [v for v in preferred if v in seen] + sorted(v for v in seen if v not in preferred)


def build_rows(records: Sequence[TrialRecord], models: Sequence[str] = (), multipliers: Sequence[str] = ()) -> list[Row]:
    groups: dict[tuple[str, str], list[TrialRecord]] = {}
    for record in records:
        groups.setdefault((record.model, record.multiplier), []).append(record)
    rows = []
    for model in _order((m for m, _ in groups), models):
        for mult in _order((x for m, x in groups if m == model), multipliers):
            if (model, mult) in groups:
                rows.append(Row.of(model, mult, groups[(model, mult)]))
    return rows


def rate(k: int, n: int) -> str:
    """``33.3% [19.1–51.2] (6/18)``: value, Wilson 95% interval, denominator."""
    if n == 0:
        return "-"
    low, high = wilson_interval(k, n)
    return f"{100 * k / n:5.1f}% [{100 * low:.1f}–{100 * high:.1f}] ({k}/{n})"


def _table(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(line[i]) for line in [header] + body) for i in range(len(header))]
    fmt = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return [fmt(header), fmt(["-" * w for w in widths])] + [fmt(cells) for cells in body]


def render(records: Sequence[TrialRecord], *, models: Sequence[str] = (), multipliers: Sequence[str] = (),
           run_dir: str = "") -> list[str]:
    rows = build_rows(records, models, multipliers)
    header = ["model", "mult", "trials", "passed", "failed", "infra", "error",
              "score (passed/all)", "pass rate excl. infra", "infra rate"]
    body = []
    for r in rows:
        causes = ",".join(f"{c}:{n}" for c, n in r.infra_causes)
        body.append([r.model, r.multiplier, str(r.trials), str(r.passed), str(r.failed),
                     f"{r.infra} ({causes})" if r.infra else "0", str(r.errors),
                     rate(r.passed, r.trials), rate(r.passed, r.trials - r.infra), rate(r.infra, r.trials)])
    lines = _table(header, body)
    enforcement = sorted({f"{r.backend}/{r.enforcement}" for r in records})
    lines.append(f"enforcement: {', '.join(enforcement)}; intervals are Wilson 95%")
    if any(r.enforcement == "rlimit" for r in records):
        lines.append("WARNING: rlimit enforcement caps virtual memory per command and does not limit CPU; "
                     "these limits are weaker than the kernel cgroup limits of a real sandbox")
    if run_dir:
        lines.append(f"run directory: {run_dir}")
    return lines
