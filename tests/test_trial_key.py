"""A trial's identity, from its node id: the one parser (no pytest run needed)."""

from pytest_harnessbench.agents.providers import parse_model
from pytest_harnessbench.resources import Multiplier
from pytest_harnessbench.trial import Case, TrialKey


def case(model="oracle:lean", mult="3", sample=2):
    return Case(parse_model(model), Multiplier.parse(mult), sample)


def test_the_key_keeps_the_users_own_parameters_in_the_task():
    key = TrialKey.of("suite/t.py::TestX::test_sort[big-oracle:lean@3x#2]", case())
    assert (key.function_id, key.task_id, key.name) == ("suite/t.py::TestX::test_sort", "suite/t.py::TestX::test_sort[big]",
                                                        "test_sort")
    plain = TrialKey.of("t.py::test_sort[oracle:lean@3x#2]", case())
    assert plain.task_id == plain.function_id == "t.py::test_sort"


def test_trial_ids_are_filename_safe_stable_and_distinct_per_task_and_case():
    a = TrialKey.of("t.py::test_sort[oracle:lean@3x#2]", case())
    assert a.trial_id == TrialKey.of("t.py::test_sort[oracle:lean@3x#2]", case()).trial_id
    assert a.trial_id.startswith("test_sort_oracle_lean@3x#2_-") and "/" not in a.trial_id
    others = {TrialKey.of("t.py::test_sort[big-oracle:lean@3x#2]", case()).trial_id,
              TrialKey.of("u.py::test_sort[oracle:lean@3x#2]", case()).trial_id,
              TrialKey.of("t.py::test_sort[oracle:lean@3x#1]", case(sample=1)).trial_id}
    assert a.trial_id not in others and len(others) == 3
