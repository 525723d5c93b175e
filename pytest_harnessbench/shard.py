"""``--hb-shard K/N``: which trials this session runs, when one bake-off is split over N machines.

The split is a pure function of the collected trials' keys, so every machine
computes the same one without talking to the others:

- trials are grouped by cell (model × multiplier), each cell ordered by a hash
  of its trial keys (``TASK_ID[MODEL@MULT#K]``), and the cells' trials dealt
  out round-robin, one after the other: every share gets within one trial of
  1/N of every cell, and of the whole, so a lost shard takes a slice of every
  model and multiplier, never a whole one;
- the N shares are disjoint and together exactly the collection;
- tests that are not trials (a project's own tests in the same session) are
  dealt out the same way, separately, so they never move a trial.

``auto`` reads the index from the variables of the engine that started the
session (:data:`AUTO_SOURCES`). GitHub Actions has no such variable: pass the
matrix value, ``--hb-shard ${{ matrix.shard }}/4``.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")

#: Engines whose variables ``--hb-shard auto`` reads: (name, index variable, total variable, first index).
AUTO_SOURCES = (
    ("GitLab CI parallel:", "CI_NODE_INDEX", "CI_NODE_TOTAL", 1),
    ("Buildkite parallelism", "BUILDKITE_PARALLEL_JOB", "BUILDKITE_PARALLEL_JOB_COUNT", 0),
    ("Kubernetes Indexed Job", "JOB_COMPLETION_INDEX", "HARNESSBENCH_SHARD_TOTAL", 0),
)


class ShardError(ValueError):
    """A bad ``--hb-shard`` value, or ``auto`` with no variable to read."""


@dataclass(frozen=True)
class Shard:
    """Share ``index`` (1-based) of ``total``; ``source``: where it came from (the option, or the variables)."""

    index: int
    total: int
    source: str = "--hb-shard"

    @property
    def label(self) -> str:
        return f"{self.index}/{self.total}"

    def to_dict(self) -> dict:
        return {"index": self.index, "total": self.total, "source": self.source}


def parse(text: str, environ: Mapping[str, str] = os.environ) -> Shard | None:
    """``K/N`` (1 ≤ K ≤ N), ``auto``, or empty (no sharding). Raises ShardError naming what is accepted."""
    text = text.strip()
    if not text:
        return None
    if text.lower() == "auto":
        return _auto(environ)
    index, slash, total = text.partition("/")
    if not slash or not index.strip().isdigit() or not total.strip().isdigit():
        raise ShardError(f"--hb-shard {text!r}: give K/N (this session runs share K of N, 1 ≤ K ≤ N, e.g. 2/4) "
                         "or 'auto'")
    return _checked(int(index), int(total), f"--hb-shard {text!r}", "--hb-shard")


def _checked(index: int, total: int, what: str, source: str) -> Shard:
    if total < 1 or not 1 <= index <= total:
        raise ShardError(f"{what}: share {index} of {total} does not exist; K/N needs 1 ≤ K ≤ N")
    return Shard(index, total, source)


def _auto(environ: Mapping[str, str]) -> Shard:
    for name, index_var, total_var, first in AUTO_SOURCES:
        if index_var not in environ:
            continue
        raw_index, raw_total = environ[index_var].strip(), environ.get(total_var, "").strip()
        if not raw_index.isdigit() or not raw_total.isdigit():
            raise ShardError(f"--hb-shard auto: {name}: {index_var}={raw_index!r}, {total_var}={raw_total!r}: "
                             "both must be whole numbers" + (f" (set {total_var} to the Job's completions)"
                                                              if total_var.startswith("HARNESSBENCH") else ""))
        index = int(raw_index) + 1 - first
        return _checked(index, int(raw_total), f"--hb-shard auto: {name} ({index_var}={raw_index}, "
                                               f"{total_var}={raw_total})", f"{index_var}/{total_var}")
    variables = ", ".join(f"{index_var} + {total_var}" for _, index_var, total_var, _ in AUTO_SOURCES)
    raise ShardError(f"--hb-shard auto: none of {variables} is set; pass --hb-shard K/N (on GitHub Actions "
                     "from the matrix: --hb-shard ${{ matrix.shard }}/N)")


def trial_key(task_id: str, case_id: str) -> str:
    """What the split hashes: ``TASK_ID[MODEL@MULT#K]``, the same on every machine (task ids are relative to the
    suite's root), readable in a list of missing trials, and cheap: no trial id is computed for a trial that
    another shard runs."""
    return f"{task_id}[{case_id}]"


def _order(key: str) -> bytes:
    """Sort key within a cell: a hash of the trial key, then the key itself (an astronomically unlikely tie)."""
    encoded = key.encode()
    return hashlib.blake2b(encoded, digest_size=8).digest() + encoded


def assign(entries: Iterable[tuple[str, Hashable]], total: int) -> dict[str, int]:
    """Share (1-based) of every key: ``entries`` are ``(key, cell)`` pairs, keys unique.

    Cells in sorted order (by their ``repr``, so any hashable works), each cell's
    keys by hash, dealt out round-robin across the concatenation: every share
    within one of ``len/total`` in every cell and overall.
    """
    cells: dict[Hashable, list[str]] = {}
    for key, cell in entries:
        cells.setdefault(cell, []).append(key)
    ordered: list[str] = []
    for cell in sorted(cells, key=repr):
        ordered += sorted(cells[cell], key=_order)
    return dict(zip(ordered, itertools.cycle(range(1, total + 1))))


@dataclass
class Selection(Generic[T]):
    """What :func:`split` chose: this shard's items and the others (each in their order), and the share of
    every collected trial (all shares: what :func:`plan` records)."""

    kept: list[T]
    deselected: list[T]
    shares: dict[str, int]


def split(items: Sequence[T], trials: Sequence[tuple[str, Hashable] | None], shard: Shard,
          other_key: Callable[[T], str]) -> Selection[T]:
    """This shard's trials and its share of the other tests.

    ``trials[i]``: ``(trial key, cell)`` of ``items[i]`` if it is a trial (each
    item keyed once, by the caller), None for another test, whose share goes by
    ``other_key(item)`` (its node id) alone.
    """
    shares = assign(filter(None, trials), shard.total)
    keys = [trial[0] if trial is not None else other_key(item) for item, trial in zip(items, trials)]
    other_shares = assign([(key, None) for key, trial in zip(keys, trials) if trial is None], shard.total)
    kept, deselected = [], []
    for item, key, trial in zip(items, keys, trials):
        share = shares[key] if trial is not None else other_shares[key]
        (kept if share == shard.index else deselected).append(item)
    return Selection(kept, deselected, shares)


def collection_digest(keys: Iterable[str]) -> str:
    """One digest of the whole collection (every share's trial keys): shards of one experiment share it."""
    return hashlib.sha256("".join(key + "\n" for key in sorted(keys)).encode()).hexdigest()


def plan(shard: Shard, shares: Mapping[str, int], task_ids: Iterable[str]) -> dict:
    """What the card records of this shard's selection.

    ``shares``: every collected trial (all shares) by :func:`trial_key` → its share (:attr:`Selection.shares`);
    ``task_ids``: the collected trials' task ids. The task ids and the digest let ``merge`` tell
    shards of another task set apart; ``trials`` (this shard's) lets it list what a shard did not finish.
    """
    return {**shard.to_dict(), "trials_collected": len(shares), "collection_sha256": collection_digest(shares),
            "task_ids": sorted(set(task_ids)), "trials": sorted(key for key, share in shares.items()
                                                              if share == shard.index)}
