"""Did the host matter? For a run whose shards ran on several machines (``harnessbench merge``).

A host is a confounder the study names: a slower disk or another kernel moves
infra and timeouts. Within each model × multiplier, the outcomes (passed,
failed, infra, error) are tabulated by host and tested (Fisher's exact test on
a 2 × 2 table, else the chi-square test of independence); the cells' p-values
are combined by Fisher's method. Cells where one host ran every trial, or every
trial ended the same way, carry no evidence and are left out (and counted).
With one host there is nothing to say.

The result is part of the summary model (``summary.Summary.hosts``); report.py
formats it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from . import stats
from .outcomes import OUTCOMES

if TYPE_CHECKING:
    from .records import TrialRecord


@dataclass(frozen=True)
class HostEffect:
    hosts: dict[str, int]  # host -> trials
    cells: dict[tuple[str, str], float]  # (model, multiplier) -> p of that cell's test
    uninformative: int  # cells with one host or one outcome
    p_combined: float | None
    verdict: str | None  # stats.verdict of p_combined ("differs", "within noise"); None when not testable

    def lines(self) -> list[str]:
        """As the terminal summary and the HTML report say it."""
        listed = ", ".join(f"{host} {n}" for host, n in self.hosts.items())
        out = [f"hosts: the shards ran on {len(self.hosts)} machines ({listed} trials); a host is a confounder"]
        if self.p_combined is None:
            out.append(f"  outcome by host within model × multiplier: not testable ({self.uninformative} cell(s), "
                       "each with one host or one outcome)")
            return out
        out.append(f"  outcome by host within model × multiplier: {self.verdict} (Fisher's combination of "
                   f"{len(self.cells)} cell test(s); {self.uninformative} cell(s) with one host or one outcome "
                   "left out)")
        if self.verdict.startswith("differs"):
            worst = sorted(self.cells.items(), key=lambda item: item[1])[:3]
            out.append("  cells that differ most: " + ", ".join(f"{m}@{x} ({stats.format_p(p)})"
                                                               for (m, x), p in worst))
        return out

    def to_dict(self) -> dict:
        """As ``Summary.results()`` carries it."""
        return {"hosts": self.hosts, "uninformative": self.uninformative, "p_combined": self.p_combined,
                "verdict": self.verdict,
                "cells": [{"model": m, "multiplier": x, "p": p} for (m, x), p in self.cells.items()]}


def cell_p(table: Sequence[Sequence[int]]) -> float | None:
    """p of independence of rows (hosts) and columns (outcomes); None without two non-empty rows and columns."""
    rows = [row for row in table if sum(row)]
    columns = [i for i in range(len(table[0]) if table else 0) if sum(row[i] for row in rows)]
    if len(rows) < 2 or len(columns) < 2:
        return None
    from scipy.stats import chi2_contingency, fisher_exact

    reduced = [[row[i] for i in columns] for row in rows]
    if len(reduced) == 2 and len(columns) == 2:
        return float(fisher_exact(reduced).pvalue)
    return float(chi2_contingency(reduced).pvalue)


def host_effect(records: Sequence[TrialRecord], host_of: Mapping[str, str], alpha: float = 0.05
                ) -> HostEffect | None:
    """None with fewer than two hosts; ``host_of`` maps a record's ``run_id`` (its shard's) to its host."""
    hosts = Counter(host_of.get(r.run_id, "?") for r in records)
    if len(hosts) < 2:
        return None
    tables: dict[tuple[str, str], dict[str, Counter]] = {}
    for r in records:
        cell = tables.setdefault((r.model, r.multiplier), {})
        cell.setdefault(host_of.get(r.run_id, "?"), Counter())[r.outcome] += 1
    cells, uninformative = {}, 0
    for key, by_host in tables.items():
        p = cell_p([[counts[o] for o in OUTCOMES] for counts in by_host.values()])
        if p is None:
            uninformative += 1
        else:
            cells[key] = p
    combined = verdict = None
    if cells:
        from scipy.stats import combine_pvalues

        combined = float(combine_pvalues(list(cells.values()), method="fisher").pvalue)
        verdict = stats.verdict(combined, None, alpha)
    return HostEffect(dict(sorted(hosts.items())), cells, uninformative, combined, verdict)
