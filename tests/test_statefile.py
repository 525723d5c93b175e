"""The shared state file: a log of whole documents, the last complete line current (statefile.py)."""

import json
import multiprocessing
import os

import pytest

from pytest_harnessbench import statefile


def empty():
    return {"n": 0}


def bump(path, times):
    for _ in range(times):
        with statefile.locked(path, empty) as document:
            document["n"] += 1


def test_a_change_is_appended_and_an_unchanged_document_is_not_written(tmp_path):
    path = tmp_path / "state.jsonl"
    assert statefile.load(path, empty) == {"n": 0}
    with statefile.locked(path, empty) as document:
        document["n"] = 1
    with statefile.locked(path, empty) as document:
        document["n"] = 2
    with statefile.locked(path, empty):
        pass
    assert path.read_text().splitlines() == ['{"n": 1}', '{"n": 2}']
    assert statefile.load(path, empty) == {"n": 2}


def test_an_exception_in_the_body_leaves_the_document_as_it_was(tmp_path):
    path = tmp_path / "state.jsonl"
    bump(path, 1)
    try:
        with statefile.locked(path, empty) as document:
            document["n"] = 99
            raise RuntimeError("boom")
    except RuntimeError:
        pass
    assert statefile.load(path, empty) == {"n": 1}


def test_an_append_cut_short_by_a_dead_writer_is_skipped_and_the_next_write_starts_a_new_line(tmp_path):
    path = tmp_path / "state.jsonl"
    bump(path, 2)
    with path.open("ab") as log:  # what a writer killed in the middle of its write leaves
        log.write(b'{"n": 3, "half')
    assert statefile.load(path, empty) == {"n": 2}  # the document before the torn line stands
    bump(path, 1)
    assert statefile.load(path, empty) == {"n": 3}
    assert path.read_bytes().endswith(b'{"n": 3, "half\n{"n": 3}\n')


def test_garbage_or_a_missing_file_counts_as_empty(tmp_path):
    path = tmp_path / "state.jsonl"
    path.write_text("not json\n[1, 2]\n")
    assert statefile.load(path, empty) == {"n": 0}
    bump(path, 1)
    assert statefile.load(path, empty) == {"n": 1}


def test_the_log_is_compacted_to_its_last_document_past_the_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(statefile, "COMPACT_BYTES", 200)
    path = tmp_path / "state.jsonl"
    for i in range(50):
        with statefile.locked(path, empty) as document:
            document["n"] = i
            document["pad"] = "x" * 20
        assert path.stat().st_size <= 200
        assert statefile.load(path, empty)["n"] == i
    assert not list(tmp_path.glob("*.tmp"))


def _bump_in_process(path, times):
    bump(path, times)


def test_processes_changing_it_at_once_lose_no_change(tmp_path, monkeypatch):
    path = tmp_path / "state.jsonl"
    monkeypatch.setattr(statefile, "COMPACT_BYTES", 300)  # compactions happen among the appends
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_bump_in_process, args=(path, 100)) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(30)
        assert worker.exitcode == 0
    assert statefile.load(path, empty) == {"n": 400}
    assert all(isinstance(json.loads(line), dict) for line in path.read_text().splitlines())
    assert os.path.getsize(path) <= 300


def test_a_compaction_that_fails_leaves_the_log_as_it_was_and_no_temporary_file(tmp_path, monkeypatch):
    monkeypatch.setattr(statefile, "COMPACT_BYTES", 10)  # the second line compacts
    path = tmp_path / "state.jsonl"
    bump(path, 1)

    def full_disk(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(statefile.os, "replace", full_disk)
    with pytest.raises(OSError, match="No space left"):
        bump(path, 1)
    assert statefile.load(path, empty) == {"n": 1}
    assert [p.name for p in tmp_path.iterdir() if p.suffix == ".tmp"] == []
