"""The shard split (shard.py): parsing K/N and auto, and a split that is deterministic, disjoint, whole, balanced."""

from collections import Counter

import pytest

from pytest_harnessbench.shard import Shard, ShardError, assign, collection_digest, parse, plan, split


def test_parse_k_of_n():
    assert parse("2/4") == Shard(2, 4, "--hb-shard")
    assert parse(" 1/1 ") == Shard(1, 1, "--hb-shard")
    assert parse("") is None


@pytest.mark.parametrize("text", ["0/4", "5/4", "2", "a/4", "2/0", "-1/4", "2/4/8", "1.5/4"])
def test_parse_refuses(text):
    with pytest.raises(ShardError, match="K/N"):
        parse(text)


@pytest.mark.parametrize("environ, expected", [
    ({"CI_NODE_INDEX": "1", "CI_NODE_TOTAL": "3"}, (1, 3)),  # GitLab: 1-based
    ({"CI_NODE_INDEX": "3", "CI_NODE_TOTAL": "3"}, (3, 3)),
    ({"BUILDKITE_PARALLEL_JOB": "0", "BUILDKITE_PARALLEL_JOB_COUNT": "4"}, (1, 4)),  # Buildkite: 0-based
    ({"BUILDKITE_PARALLEL_JOB": "3", "BUILDKITE_PARALLEL_JOB_COUNT": "4"}, (4, 4)),
    ({"JOB_COMPLETION_INDEX": "2", "HARNESSBENCH_SHARD_TOTAL": "8"}, (3, 8)),  # Indexed Job: 0-based
])
def test_auto_reads_the_engines_variables(environ, expected):
    shard = parse("auto", environ)
    assert (shard.index, shard.total) == expected
    assert shard.source != "--hb-shard"


def test_auto_without_variables_says_what_to_set():
    with pytest.raises(ShardError, match=r"CI_NODE_INDEX.*JOB_COMPLETION_INDEX.*matrix"):
        parse("auto", {})


def test_auto_indexed_job_without_its_total_names_it():
    with pytest.raises(ShardError, match="HARNESSBENCH_SHARD_TOTAL"):
        parse("auto", {"JOB_COMPLETION_INDEX": "0"})


def test_auto_out_of_range():
    with pytest.raises(ShardError, match="does not exist"):
        parse("auto", {"BUILDKITE_PARALLEL_JOB": "4", "BUILDKITE_PARALLEL_JOB_COUNT": "4"})


def _trials(tasks=7, models=("a", "b", "c"), mults=("1x", "3x", "uncapped"), samples=5):
    return [(f"test_{t}[{m}@{x}#{k}]-{t:06x}", (m, x)) for t in range(tasks) for m in models for x in mults
            for k in range(1, samples + 1)]


@pytest.mark.parametrize("total", [1, 2, 3, 4, 7, 50])
def test_split_is_disjoint_whole_and_balanced_in_every_cell(total):
    entries = _trials()
    shares = assign(entries, total)
    assert set(shares) == {key for key, _ in entries}  # whole, and each key in exactly one share
    assert set(shares.values()) <= set(range(1, total + 1))
    overall = Counter(shares.values())
    sizes = [overall.get(i, 0) for i in range(1, total + 1)]
    assert max(sizes) - min(sizes) <= 1
    for cell in {cell for _, cell in entries}:
        per = Counter(shares[key] for key, c in entries if c == cell)
        counts = [per.get(i, 0) for i in range(1, total + 1)]
        assert max(counts) - min(counts) <= 1, (cell, counts)


def test_split_depends_on_the_keys_alone_not_their_order():
    entries = _trials()
    assert assign(entries, 4) == assign(list(reversed(entries)), 4)


def test_split_mixes_tasks_and_samples():
    """Not a contiguous block: one share holds trials of many tasks within a cell."""
    entries = _trials(tasks=20, models=("a",), mults=("1x",), samples=4)
    shares = assign(entries, 4)
    first = [key for key, _ in entries if shares[key] == 1]
    assert len({key.split("[")[0] for key in first}) >= 8


def test_split_items_keeps_order_and_splits_other_tests_apart():
    items = [("trial", key, cell) for key, cell in _trials(tasks=3)] + [("plain", f"test_plain_{i}", None)
                                                                         for i in range(10)]

    trials = [(item[1], item[2]) if item[0] == "trial" else None for item in items]
    selections = [split(items, trials, Shard(i, 3), lambda item: item[1]) for i in (1, 2, 3)]
    union = [item for selection in selections for item in selection.kept]
    assert sorted(union) == sorted(items) and len(union) == len(items)
    for selection in selections:
        assert [i for i in items if i in selection.kept] == selection.kept
        assert [i for i in items if i in selection.deselected] == selection.deselected
        assert len(selection.kept) + len(selection.deselected) == len(items)
    # the plain tests do not move the trials: the trials' shares are those of the trials alone
    alone = assign([(i[1], i[2]) for i in items if i[0] == "trial"], 3)
    for index, selection in enumerate(selections, start=1):
        assert selection.shares == alone  # every trial's share, the same from every shard
        assert {i[1] for i in selection.kept if i[0] == "trial"} == {k for k, s in alone.items() if s == index}


def test_plan_records_this_shards_trials_and_the_whole_collection():
    entries = _trials(tasks=3)
    shares = assign(entries, 4)
    task_ids = [key.split("[")[0] for key, _ in entries]
    plans = [plan(Shard(i, 4), shares, task_ids) for i in (1, 2, 3, 4)]
    assert sorted(key for p in plans for key in p["trials"]) == sorted(shares)  # disjoint and whole
    assert all(p["trials"] == sorted(p["trials"]) for p in plans)
    assert {p["collection_sha256"] for p in plans} == {collection_digest(shares)}
    assert all(p["trials_collected"] == len(entries) and p["task_ids"] == ["test_0", "test_1", "test_2"]
               for p in plans)


def test_collection_digest_is_order_free_and_set_sensitive():
    ids = [key for key, _ in _trials(tasks=2)]
    assert collection_digest(ids) == collection_digest(reversed(ids))
    assert collection_digest(ids) != collection_digest(ids[1:])
