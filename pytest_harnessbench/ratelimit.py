"""A provider's rate limit, shared by every worker on the host: trials wait for room instead of collecting 429s.

``--hb-rate-limit openai=500rpm,openai:gpt-5.1=30000tpm,openai:local=3/5s``:
a key is a provider (``openai``: every model of it) or one model string; a
limit is requests (``rpm``, ``rps``, ``N/WINDOW``) or tokens (``tpm``,
``tps``, ``Ntok/WINDOW``) per window, as providers state their own limits.
Before each model call (each retry too) the harness takes room under every
limit that applies to its model; the seconds it waits are the trial's
``rate_wait_s``, kept out of its agent time and its time limit.

Requests are counted in a sliding window that never lets more than N start
within any window, measured at the provider: each window is cut into
:data:`SLOTS` slots, a request counts against every slot that overlaps the
last window *plus a guard* (the larger of one slot and a tenth of the window,
at most 1 s) for the time between taking room here and arriving there. Tokens
are known only when a call returns: a call starts while the window's recorded
tokens are below the limit (as providers do, this can overshoot by the calls
in flight).

State: one small JSON document per user (``paths.state_root()/ratelimit``),
read and written under an flock (statefile.py), so xdist workers and
concurrent sessions on the host share the limit, as they share the
provider's. Only counts per slot are kept, so a document stays small at any
rate; slots older than the longest window are dropped.
"""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

from . import statefile
from .paths import state_root, writable_dir

SLOTS = 60
REQUESTS, TOKENS = "requests", "tokens"
_UNITS = {"s": 1.0, "sec": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}
_SHORT = {"rpm": (REQUESTS, 60.0), "rps": (REQUESTS, 1.0), "tpm": (TOKENS, 60.0), "tps": (TOKENS, 1.0)}
_LIMIT = re.compile(r"^(\d+)\s*(?:(rpm|rps|tpm|tps)|(req|tok)?\s*/\s*(\d*\.?\d*)\s*(s|sec|m|min|h))$", re.IGNORECASE)
EXAMPLE = "e.g. openai=500rpm,openai:gpt-5.1=30000tpm,openai:local=3/5s"


@dataclass(frozen=True)
class Limit:
    key: str  # a provider ("openai") or a model string ("openai:gpt-5.1")
    kind: str  # REQUESTS or TOKENS
    count: int
    window_s: float

    @property
    def slot_s(self) -> float:
        return self.window_s / SLOTS

    @property
    def guard_s(self) -> float:
        return max(self.slot_s, min(1.0, self.window_s / 10))

    @property
    def name(self) -> str:
        return f"{self.key}:{self.kind}:{self.count}/{self.window_s:g}s"

    def applies(self, model: str) -> bool:
        return model == self.key or model.partition(":")[0] == self.key

    def __str__(self) -> str:
        return f"{self.key}={self.count} {self.kind}/{self.window_s:g}s"


def parse(text: str) -> tuple[Limit, ...]:
    """``KEY=LIMIT`` comma list; ValueError naming the bad entry."""
    limits = []
    for entry in (e.strip() for e in text.split(",")):
        if not entry:
            continue
        key, eq, value = entry.rpartition("=")
        match = _LIMIT.match(value.strip())
        if not (eq and key.strip() and match) or int(match.group(1)) < 1:
            raise ValueError(f"{entry!r} is not KEY=LIMIT with a positive count; {EXAMPLE}")
        if match.group(2):
            kind, window = _SHORT[match.group(2).lower()]
        else:
            kind = TOKENS if (match.group(3) or "").lower() == "tok" else REQUESTS
            window = float(match.group(4) or 1) * _UNITS[match.group(5).lower()]
            if window <= 0:
                raise ValueError(f"{entry!r}: the window must be longer than 0 s; {EXAMPLE}")
        limits.append(Limit(key.strip(), kind, int(match.group(1)), window))
    return tuple(limits)


def _empty() -> dict:
    return {}


class RateLimits:
    """The run's limits and their shared state; :meth:`throttle` gives one trial's view for its model."""

    def __init__(self, limits: tuple[Limit, ...], directory: Path | None = None,
                 now: Callable[[], float] = time.time, sleep: Callable[[float], None] = time.sleep):
        self.limits = limits
        self.directory = directory or state_root() / "ratelimit"
        self.path = self.directory / "windows.jsonl"
        self._now, self._sleep = now, sleep
        self._ready = False

    def for_model(self, model: str) -> tuple[Limit, ...]:
        return tuple(limit for limit in self.limits if limit.applies(model))

    def throttle(self, model: str, pause: Callable[[], AbstractContextManager] | None = None) -> Throttle | None:
        limits = self.for_model(model)
        return Throttle(self, limits, pause) if limits else None

    def _document(self):
        if not self._ready:
            writable_dir(self.directory, "rate-limit state")
            self._ready = True
        self.directory.mkdir(parents=True, exist_ok=True)  # made again if it vanished mid-run
        return statefile.locked(self.path, _empty)

    def try_acquire(self, limits: tuple[Limit, ...]) -> float:
        """Take room for one request under every limit (all or none); 0.0 when taken, else seconds to wait."""
        now = self._now()
        with self._document() as state:
            waits = [self._wait(state.get(limit.name, {}), limit, now) for limit in limits]
            if max(waits) > 0:
                return max(waits)
            for limit in limits:
                if limit.kind == REQUESTS:
                    self._add(state, limit, now, 1)
        return 0.0

    def used(self, limits: tuple[Limit, ...], tokens: int) -> None:
        token_limits = [limit for limit in limits if limit.kind == TOKENS]
        if tokens > 0 and token_limits:
            now = self._now()
            with self._document() as state:
                for limit in token_limits:
                    self._add(state, limit, now, tokens)

    @staticmethod
    def _slot(limit: Limit, t: float) -> int:
        return math.floor(t / limit.slot_s)

    def _counted(self, slots: dict, limit: Limit, now: float) -> list[tuple[int, int]]:
        """(slot, count) of the slots overlapping the last window plus its guard."""
        first = self._slot(limit, now - limit.window_s - limit.guard_s)
        return sorted((int(s), c) for s, c in slots.items() if int(s) >= first)

    def _wait(self, slots: dict, limit: Limit, now: float) -> float:
        """0.0 when the limit has room for one more request (tokens: while the window holds fewer than the
        limit), else the seconds until enough of the oldest slots have left the window."""
        counted = self._counted(slots, limit, now)
        excess = sum(c for _, c in counted) + 1 - limit.count
        if excess <= 0:
            return 0.0
        freed = 0
        for slot, count in counted:
            freed += count
            if freed >= excess:
                leaves = (slot + 1) * limit.slot_s + limit.window_s + limit.guard_s
                return max(leaves - now, limit.slot_s / 10)
        return limit.slot_s

    def _add(self, state: dict, limit: Limit, now: float, amount: int) -> None:
        slots = state.setdefault(limit.name, {})
        key = str(self._slot(limit, now))
        slots[key] = slots.get(key, 0) + amount
        keep = self._slot(limit, now - limit.window_s - limit.guard_s)
        for old in [s for s in slots if int(s) < keep]:
            del slots[old]


class Throttle:
    """One trial's rate limits for its model (the harness's ``throttle``): acquire before a call, report tokens after."""

    def __init__(self, limits: RateLimits, applying: tuple[Limit, ...],
                 pause: Callable[[], AbstractContextManager] | None = None):
        self.limits = limits
        self.applying = applying
        self.pause = pause

    def acquire(self) -> float:
        """Block until every limit has room; the seconds waited (the trial's clock stands still meanwhile)."""
        wait = self.limits.try_acquire(self.applying)
        if wait == 0.0:
            return 0.0
        start = self.limits._now()
        if self.pause is None:
            self._wait(wait)
        else:
            with self.pause():
                self._wait(wait)
        return max(0.0, self.limits._now() - start)

    def _wait(self, wait: float) -> None:
        while wait > 0:
            self.limits._sleep(min(wait, 1.0))  # re-asked at least every second: others' room may come back
            wait = self.limits.try_acquire(self.applying)

    def used(self, tokens: int) -> None:
        self.limits.used(self.applying, tokens)
