"""The harness card and trial records as data: no pytest run needed."""

from pytest_harnessbench.records import harness_card


def card(**settings):
    return harness_card(run_id="r", started_at="t", settings=settings, backend={"backend": "local"},
                        concurrency=1, plugin_version="0", args=[])


def test_the_cards_retry_policy_says_what_retry_infra_does():
    """Issue 17: the card said 're-run only on request' whatever --hb-retry-infra was."""
    assert card(retry_infra=2)["retry_policy"]["infra_trials"].startswith("re-run up to 2 more time(s) in the same")
    assert card(retry_infra=0)["retry_policy"]["infra_trials"].startswith("not re-run in the session")
