"""Production budgets as experimental variables: a token and a cost cap per trial, a spend cap per session.

Per trial (:class:`Caps`), the same for every model, as ``--hb-max-steps`` is:
the harness asks :meth:`TrialBudget.hit` between model calls and stops the
agent gracefully once a cap is reached (the tool calls of the model call that
crossed it still run, as for the step limit); the task's verification then
runs on what the agent did, and a trial that did not pass is ``failed/budget``.
A model call cannot be cut short when it crosses a cap, so a trial may end
over its cap by that one call. ``--hb-scale budget`` scales both caps with the
multiplier (``uncapped``: no cap), so a tight-vs-generous budget sweep is one run.

Per session (:class:`SpendLedger`): what the session's trials cost, summed
across its processes (xdist workers) in a small file under the user's state
directory (``paths.state_root()/spend``), owned by the session's controller.
Past ``--hb-max-spend`` no new trial starts; trials already running finish.
The cap is this session's: resuming a run is the decision to spend again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from . import statefile
from .paths import state_root, writable_dir
from .procs import identity, token_alive

BUDGET_SCALE = "budget"  # the --hb-scale name that scales both caps
TOKENS, COST = "tokens", "cost"


def cost_usd(input_tokens: int, output_tokens: int, price: dict | None) -> float | None:
    """USD for these tokens at ``price`` ({input_per_1m, output_per_1m}); None without a price."""
    if price is None:
        return None
    return input_tokens * price["input_per_1m"] / 1e6 + output_tokens * price["output_per_1m"] / 1e6


@dataclass(frozen=True)
class Caps:
    """A trial's budget: total tokens (input + output) and estimated cost; None is no cap."""

    tokens: int | None = None
    cost_usd: float | None = None

    def __bool__(self) -> bool:
        return self.tokens is not None or self.cost_usd is not None

    def scaled(self, factor: float | None, scale: frozenset[str]) -> Caps:
        """The caps at a multiplier (its factor; None for uncapped) when ``--hb-scale`` names ``budget``."""
        if BUDGET_SCALE not in scale or not self:
            return self
        if factor is None:
            return Caps()
        return Caps(None if self.tokens is None else int(self.tokens * factor),
                    None if self.cost_usd is None else self.cost_usd * factor)

    def to_dict(self) -> dict:
        return {"tokens": self.tokens, "cost_usd": self.cost_usd}

    def describe(self) -> str:
        parts = ([f"{self.tokens:,} tokens"] if self.tokens is not None else []) + \
                ([f"${self.cost_usd:g}"] if self.cost_usd is not None else [])
        return " and ".join(parts) or "none"


class TrialBudget:
    """One trial's caps and price; :meth:`hit` says which cap its usage has reached (None: within budget)."""

    def __init__(self, caps: Caps, price: dict | None):
        self.caps = caps
        self.price = price
        self.reached: str | None = None  # the cap that stopped the agent, once one did

    def hit(self, input_tokens: int, output_tokens: int) -> str | None:
        if self.caps.tokens is not None and input_tokens + output_tokens >= self.caps.tokens:
            return TOKENS
        cost = cost_usd(input_tokens, output_tokens, self.price)
        if self.caps.cost_usd is not None and cost is not None and cost >= self.caps.cost_usd:
            return COST
        return None

    def to_dict(self) -> dict:
        """For the trial record: the caps that applied and the one reached, if any."""
        return {**self.caps.to_dict(), "reached": self.reached}


def missing_prices(models, prices: dict) -> list[str]:
    """Provider models without a price: their cost cannot be known, so a cost or spend cap cannot hold."""
    return [m.text for m in models if m.kind == "provider" and m.text not in prices]


# --------------------------------------------------------------------------- the session's spend

def _empty() -> dict:
    return {"by_model": {}}


class SpendLedger:
    """What one session's trials cost, shared by its processes; the controller creates and removes it.

    ``<state_root>/spend/<run_id>~<pid>-<start>.jsonl`` (statefile.py), named by the controller's
    pid and start time: that tells a live session's ledger from a dead one's,
    which a later session's controller removes (only names of this pattern, in
    this directory of its own).
    """

    def __init__(self, run_id: str, controller_pid: int, cap_usd: float | None, directory: Path | None = None):
        self.cap_usd = cap_usd
        self.directory = directory or state_root() / "spend"
        controller = identity(controller_pid)
        self.path = self.directory / f"{run_id}~{controller_pid}-{controller['start'] or 0}.jsonl"

    def create(self) -> None:
        """In the controller, before any trial: a fresh ledger; leftovers of dead sessions go."""
        writable_dir(self.directory, "spend ledger")
        for leftover in self.directory.glob("*~*.jsonl"):
            if leftover != self.path and not token_alive(leftover.stem.rpartition("~")[2]):
                for path in (leftover, leftover.with_name(leftover.name + ".lock")):
                    path.unlink(missing_ok=True)
        with statefile.locked(self.path, _empty) as ledger:
            ledger.clear()
            ledger.update(_empty())

    def add(self, model: str, cost: float | None) -> None:
        if cost:
            self.directory.mkdir(parents=True, exist_ok=True)  # made again if it vanished mid-run
            with statefile.locked(self.path, _empty) as ledger:
                ledger["by_model"][model] = ledger["by_model"].get(model, 0.0) + cost

    def admit(self) -> str | None:
        """Before a trial starts: None to go ahead, or why not (the cap is reached)."""
        if self.cap_usd is None:
            return None
        spent = sum(self.read().get("by_model", {}).values())
        return None if spent < self.cap_usd else f"--hb-max-spend ${self.cap_usd:g} reached (${spent:.4f} spent)"

    def read(self) -> dict:
        return statefile.load(self.path, _empty)

    def summary_line(self) -> str | None:
        """What this session spent per model, against its cap."""
        if self.cap_usd is None:
            return None
        by_model = self.read().get("by_model", {})
        spent = sum(by_model.values())
        models = ", ".join(f"{m} ${v:.4f}" for m, v in sorted(by_model.items(), key=lambda kv: -kv[1]))
        return f"spend: ${spent:.4f} of the ${self.cap_usd:g} cap this session" + (f" ({models})" if models else "")

    def remove(self) -> None:
        for path in (self.path, self.path.with_name(self.path.name + ".lock")):
            path.unlink(missing_ok=True)
