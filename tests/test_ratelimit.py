"""The shared rate limit (ratelimit.py): parsing, and the sliding window's promise under a clock the test drives."""

import random

import pytest

from pytest_harnessbench.ratelimit import REQUESTS, TOKENS, Limit, RateLimits, parse


def test_limits_read_as_providers_state_them():
    assert parse("openai=500rpm, openai:gpt-5.1=30000tpm,openai:x=3/5s,anthropic=2rps,m:n=100tok/min") == (
        Limit("openai", REQUESTS, 500, 60.0), Limit("openai:gpt-5.1", TOKENS, 30000, 60.0),
        Limit("openai:x", REQUESTS, 3, 5.0), Limit("anthropic", REQUESTS, 2, 1.0), Limit("m:n", TOKENS, 100, 60.0))
    assert parse("") == ()
    for bad in ("openai", "openai=fast", "=5rpm", "openai=0rpm", "openai=3/0s"):
        with pytest.raises(ValueError):
            parse(bad)


def test_a_limit_applies_to_its_provider_or_its_model():
    limits = RateLimits(parse("openai=5rpm,openai:a=1rps"))
    assert len(limits.for_model("openai:a")) == 2 and len(limits.for_model("openai:b")) == 1
    assert limits.throttle("anthropic:c") is None


class Clock:
    def __init__(self):
        self.t = 1_000_000.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


def test_no_window_ever_holds_more_requests_than_the_limit(tmp_path):
    """Many callers asking at random moments: every admitted request, at any moment, sees at most N in the window."""
    clock = Clock()
    limit = Limit("p", REQUESTS, 7, 10.0)
    limits = RateLimits((limit,), tmp_path, now=clock, sleep=clock.sleep)
    admitted, rng = [], random.Random(4)
    for _ in range(400):
        clock.t += rng.expovariate(2.0)  # asks at about 2/s, far over 7 per 10 s
        if limits.try_acquire((limit,)) == 0.0:
            admitted.append(clock.t)
    assert all(sum(1 for s in admitted if t - 10.0 < s <= t) <= 7 for t in admitted)
    # and nearly all of the room is used: the guard costs at most one slot and a tenth of the window
    span = admitted[-1] - admitted[0]
    assert len(admitted) >= 7 * span / (10.0 + 1.0 + 10 / 60) - 7


def test_a_waiting_caller_is_told_when_room_comes_back(tmp_path):
    clock = Clock()
    limit = Limit("p", REQUESTS, 2, 60.0)
    limits = RateLimits((limit,), tmp_path, now=clock, sleep=clock.sleep)
    throttle = limits.throttle("p:model")
    assert throttle.acquire() == 0.0 and throttle.acquire() == 0.0
    waited = throttle.acquire()
    assert 60.0 <= waited <= 60.0 + 1.0 + 2.0  # a window, its guard, one slot


def test_tokens_block_new_calls_while_the_window_holds_the_limit(tmp_path):
    clock = Clock()
    limit = Limit("p", TOKENS, 1000, 60.0)
    limits = RateLimits((limit,), tmp_path, now=clock, sleep=clock.sleep)
    throttle = limits.throttle("p:m")
    assert throttle.acquire() == 0.0
    throttle.used(600)
    assert throttle.acquire() == 0.0  # 600 < 1000: room
    throttle.used(600)
    assert limits.try_acquire((limit,)) > 0  # 1200 ≥ 1000: wait
    assert throttle.acquire() >= 60.0
