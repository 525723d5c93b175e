"""Progress of a long bake-off: trials done per model × multiplier, infra so far.

Pure bookkeeping; the plugin decides when to print (every ``--hb-progress``
seconds, at the start of a line, so pytest's rows of progress letters stay whole).
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Iterable

from .outcomes import INFRA

if TYPE_CHECKING:
    from .records import TrialRecord


class Progress:
    def __init__(self, interval_s: float, clock=time.monotonic):
        self.interval_s = interval_s
        self.clock = clock
        self.total: Counter = Counter()  # (model, multiplier) -> trials expected
        self.done: Counter = Counter()
        self.infra: Counter = Counter()
        self._last = clock()

    def expect(self, cells: Iterable[tuple[str, str]]) -> None:
        """Set the expected trials, once per collection (xdist: every worker collects the same)."""
        self.total = Counter(cells)

    def add(self, record: TrialRecord) -> None:
        cell = (record.model, record.multiplier)
        self.done[cell] += 1
        self.infra[cell] += record.outcome == INFRA

    def due(self) -> bool:
        """Time for a progress line (and resets the timer when it is)."""
        if self.interval_s <= 0 or self.clock() - self._last < self.interval_s:
            return False
        self._last = self.clock()
        return True

    def lines(self, width: int) -> list[str]:
        """The progress in lines of at most ``width`` columns, each model's cells together
        (``oracle:heavy 1x 9/18 (infra 9), 3x 6/18``); a cell is never split across lines (one wider than
        the terminal is cut), continuation lines are indented."""
        cells = list(self.total) or list(self.done)
        done, total = sum(self.done.values()), sum(self.total.values()) or sum(self.done.values())
        lines = [f"harnessbench progress: {done}/{total} trials"]
        for i, (m, x) in enumerate(cells):
            first = i == 0 or cells[i - 1][0] != m
            infra = f" (infra {self.infra[(m, x)]})" if self.infra[(m, x)] else ""
            part = (f"{m} " if first else "") + f"{x} {self.done[(m, x)]}/{self.total[(m, x)] or '?'}{infra}"
            separator = " · " if first else ", "
            if len(lines[-1]) + len(separator) + len(part) <= width:
                lines[-1] += separator + part
            else:
                lines.append("  " + part)
        return [line if len(line) <= width else line[:max(width - 3, 0)] + "..." for line in lines]
