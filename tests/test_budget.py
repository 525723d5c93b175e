"""Budgets (budget.py): per-trial caps, scaling with the multiplier, the session's spend shared across processes."""

import multiprocessing
import os

import pytest

from pytest_harnessbench.models import parse_model
from pytest_harnessbench.budget import Caps, SpendLedger, TrialBudget, cost_usd, missing_prices
from pytest_harnessbench.config import parse_budget
from pytest_harnessbench.options import ConfigError

PRICE = {"input_per_1m": 2.0, "output_per_1m": 10.0}


def test_caps_scale_with_the_multiplier_only_when_asked():
    caps = Caps(tokens=1000, cost_usd=0.5)
    assert caps.scaled(3.0, frozenset({"cpu", "memory"})) == caps
    assert caps.scaled(3.0, frozenset({"budget"})) == Caps(3000, 1.5)
    assert caps.scaled(None, frozenset({"budget"})) == Caps()  # uncapped: no cap, as for time
    assert not Caps() and Caps(tokens=1)


def test_a_trial_budget_names_the_cap_it_reached():
    budget = TrialBudget(Caps(tokens=1000, cost_usd=0.004), PRICE)
    assert budget.hit(500, 100) is None  # 600 tokens, $0.002
    assert budget.hit(900, 100) == "tokens"
    assert budget.hit(500, 300) == "cost"  # 800 tokens, $0.004
    assert TrialBudget(Caps(cost_usd=0.001), None).hit(10**6, 10**6) is None  # no price, no cost to cap
    assert cost_usd(10**6, 10**6, PRICE) == 12.0 and cost_usd(1, 1, None) is None


def test_cost_and_spend_caps_need_a_price_for_every_provider_model():
    models = (parse_model("openai:a"), parse_model("openai:b"), parse_model("oracle"))
    assert missing_prices(models, {"openai:a": PRICE}) == ["openai:b"]
    raw = {"max_tokens": "", "max_cost": "", "max_spend": "1", "rate_limit": ""}
    with pytest.raises(ConfigError, match="--hb-max-spend needs a price.*openai:b"):
        parse_budget(raw, models, {"openai:a": PRICE})
    assert parse_budget(raw, models, {"openai:a": PRICE, "openai:b": PRICE})["max_spend"] == 1.0
    with pytest.raises(ConfigError, match="--hb-max-tokens 'lots' is not a whole number"):
        parse_budget({**raw, "max_spend": "", "max_tokens": "lots"}, models, {})
    with pytest.raises(ConfigError, match="--hb-rate-limit: 'openai' is not KEY=LIMIT"):
        parse_budget({**raw, "max_spend": "", "rate_limit": "openai"}, models, {})


def _spend(run_id, controller_pid, times):
    ledger = SpendLedger(run_id, controller_pid, 1.0)
    for _ in range(times):
        ledger.add("openai:a", 0.01)


def test_the_spend_of_a_session_is_summed_across_processes_and_stops_new_trials():
    ledger = SpendLedger("r1", os.getpid(), 1.0)
    ledger.create()
    assert ledger.admit() is None
    workers = [multiprocessing.Process(target=_spend, args=("r1", os.getpid(), 50)) for _ in range(2)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert ledger.read()["by_model"]["openai:a"] == pytest.approx(1.0)
    assert ledger.admit() == "--hb-max-spend $1 reached ($1.0000 spent)"
    assert ledger.summary_line() == "spend: $1.0000 of the $1 cap this session (openai:a $1.0000)"
    ledger.remove()
    assert not ledger.path.exists()


def test_a_new_session_removes_only_dead_sessions_ledgers():
    child = multiprocessing.Process(target=_spend, args=("old", 1, 0))
    child.start()
    child.join()
    dead = SpendLedger("old", child.pid, 1.0)
    dead.add("m", 0.5)
    alive = SpendLedger("other", os.getppid(), 1.0)
    alive.add("m", 0.5)
    SpendLedger("new", os.getpid(), 1.0).create()
    assert not dead.path.exists() and alive.path.exists()
