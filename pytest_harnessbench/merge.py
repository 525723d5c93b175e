"""``harnessbench merge OUT RUN_DIR...``: one run directory from the shards of one bake-off (``--hb-shard``).

- Shards of different experiments are refused, naming the first difference
  (:data:`EXPERIMENT`: models, multipliers, samples, scale, backend,
  enforcement, the harness's prompt and tool hashes, the task set).
- Missing shards and missing trials are listed in the merged card
  (``merge.partial``); resuming a shard (``--hb-resume`` its directory) and
  merging again completes the run.
- A trial recorded by more than one directory is resolved as ``--hb-resume
  --hb-resume-retry infra`` would have: attempts in the order they finished, up
  to and including the first that did not end in infra; later ones are
  duplicates, left out (and counted). Kept attempts are renumbered 1..k.
- Records keep their shard's ``run_id``; the card's ``shards`` maps each to
  its provenance (host, CPU, kernel, enforcement, backend, images, packages,
  start and end), which the summary uses to test for a host effect.

The merged directory is written beside OUT and renamed into place: a reader
never sees half of it, and merging again replaces an earlier merge.
"""

from __future__ import annotations

import copy
import hashlib
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import NamedTuple

from .outcomes import INFRA
from .store import CARD, TRIALS, RecordLine, RunDir, RunStore, attempt_key, iter_record_lines, write_results

#: What defines the experiment: (section of the card or None for its top level, key, how to name it).
EXPERIMENT = (
    ("settings", "models", "--models"),
    ("settings", "multipliers", "--multipliers"),
    ("settings", "samples", "--samples"),
    ("settings", "scale", "--hb-scale"),
    ("settings", "backend", "--hb-backend"),
    ("settings", "enforcement", "--hb-enforcement"),
    ("settings", "oom_as", "--hb-oom-as"),
    ("settings", "max_steps", "--hb-max-steps"),
    ("settings", "model_params", "--hb-model-param"),
    (None, "enforcement", "enforcement method"),
    ("harness", "system_prompt_sha256", "system prompt (sha256)"),
    ("harness", "toolset_sha256", "tool set (sha256)"),
    ("shard", "total", "number of shards (--hb-shard K/N)"),
)
SHOWN_MISSING = 20  # missing trial keys listed per shard in messages (the card holds them all)


class MergeError(ValueError):
    """The directories cannot be merged: the message says why and names the directories."""


class Attempt(NamedTuple):
    """What merging needs of one record: who, how it ended, when, which attempt; and its line as written."""

    trial_id: str
    key: str  # shard.trial_key: how shard plans name it
    outcome: str
    finished_at: str
    number: int | None
    record: RecordLine  # as written: a merge copies lines (renumbered where it must), not parsed records


@dataclass
class Source:
    """One run directory given to merge: its card, its records, and its share."""

    path: Path
    card: dict
    attempts: list[Attempt]

    @property
    def shard(self) -> dict:
        """The card's shard plan; a run made without --hb-shard is share 1 of 1."""
        return self.card.get("shard") or {"index": 1, "total": 1}

    @property
    def index(self) -> int:
        return int(self.shard.get("index", 1))

    @property
    def name(self) -> str:
        return f"{self.path} (shard {self.index}/{self.shard.get('total', 1)})"

    def provenance(self) -> dict:
        """This shard's machine and software, for the merged card's ``shards``."""
        card = self.card
        return {"path": str(self.path), "run_id": card.get("run_id"), "shard": self.shard.get("index") and
                f"{self.index}/{self.shard.get('total', 1)}", "source": self.shard.get("source"),
                **(card.get("provenance") or {"host": (card.get("host") or {}).get("hostname")}),
                "host_facts": card.get("host"), "enforcement": card.get("enforcement"), "backend": card.get("backend"),
                "packages": card.get("packages"), "plugin_version": card.get("plugin_version"),
                "started_at": card.get("started_at"), "finished_at": card.get("finished_at"),
                "resumes": card.get("resumes", []), "trials_recorded": len(self.attempts)}


def load(path: Path) -> Source:
    run = RunDir(path)
    card = run.card()
    if card is None:
        raise MergeError(f"{path}: no {CARD}: not a run directory (pass the directories given to --hb-out)")
    from .shard import trial_key

    attempts = [Attempt(r.trial_id, trial_key(r.task_id, r.case_id), r.outcome, r.finished_at, r.attempt, r)
                for r in (iter_record_lines(path) if run.has_results else ())]
    return Source(Path(path), card, attempts)


def _value(card: dict, section: str | None, key: str):
    holder = card if section is None else (card.get(section) or ({"total": 1} if section == "shard" else {}))
    return holder.get(key)


def _shown(value) -> str:
    return ",".join(map(str, value)) if isinstance(value, list) else str(value)


def check_same_experiment(sources: Sequence[Source]) -> None:
    """Raise MergeError naming the first setting in which a source differs from the first one."""
    first = sources[0]
    for other in sources[1:]:
        for section, key, name in EXPERIMENT:
            a, b = _value(first.card, section, key), _value(other.card, section, key)
            if a != b:
                raise MergeError(f"{first.name} and {other.name} are different experiments: {name} "
                                 f"{_shown(a)} vs {_shown(b)}; merge only the shards of one bake-off")
        _check_same_tasks(first, other)


def _check_same_tasks(a: Source, b: Source) -> None:
    sa, sb = a.card.get("shard") or {}, b.card.get("shard") or {}
    if not (sa.get("collection_sha256") and sb.get("collection_sha256")):
        return  # a shard interrupted under xdist before its workers reported: nothing to compare
    if sa["collection_sha256"] == sb["collection_sha256"]:
        return
    ta, tb = set(sa.get("task_ids") or ()), set(sb.get("task_ids") or ())
    if ta != tb:
        only_a, only_b = sorted(ta - tb), sorted(tb - ta)
        detail = "; ".join(filter(None, [only_a and f"only in the first: {_few(only_a)}",
                                          only_b and f"only in the second: {_few(only_b)}"]))
        raise MergeError(f"{a.name} and {b.name} are different experiments: task set ({detail}); merge only the "
                         "shards of one bake-off")
    raise MergeError(f"{a.name} and {b.name} are different experiments: the same tasks, but other trials were "
                     f"collected ({sa.get('trials_collected')} vs {sb.get('trials_collected')}: a -k, -m or --lf "
                     "selection?); every shard must collect the same trials")


def _few(values: Sequence[str], shown: int = 3) -> str:
    return ", ".join(values[:shown]) + (f", ... ({len(values) - shown} more)" if len(values) > shown else "")


@dataclass
class Merged:
    """The merged records (every kept attempt), where their trajectories come from, and what is missing."""

    trial_ids: list[str]  # one per kept attempt, in the order of results.jsonl
    result_lines: list[str]  # results.jsonl of OUT, one per attempt
    trajectories: list[tuple[str, str]]  # (source file, file key in OUT)
    total: int
    present: list[int]
    missing_shards: list[int]
    missing_trials: dict[str, list[str]]  # shard "K/N" -> trial keys its share holds but no directory recorded
    unknown_shards: list[int] = field(default_factory=list)  # missing shards whose trials cannot be listed
    duplicates: int = 0

    @property
    def partial(self) -> bool:
        return bool(self.missing_shards or self.unknown_shards or any(self.missing_trials.values()))

    def lines(self) -> list[str]:
        """What the merge says: the shards, and what is missing (the command that completes it)."""
        lines = [f"merged {len(self.present)} of {self.total} shard(s): {len(set(self.trial_ids))} trial(s), "
                 f"{len(self.trial_ids)} attempt(s)"
                 + (f"; {self.duplicates} duplicate attempt(s) left out (resolved as --hb-resume does)"
                    if self.duplicates else "")]
        if self.missing_shards:
            lines.append(f"MISSING SHARDS: {', '.join(f'{i}/{self.total}' for i in self.missing_shards)}: run them "
                         "(--hb-shard K/N), then merge again with their directories")
        for shard, ids in self.missing_trials.items():
            if ids:
                lines.append(f"MISSING TRIALS of shard {shard}: {len(ids)} ({_few(sorted(ids), SHOWN_MISSING)})"
                             + ("" if shard.split("/")[0] in map(str, self.missing_shards)
                                else "; finish it with --hb-resume ITS_RUN_DIR, then merge again"))
        if self.partial:
            lines.append("PARTIAL RUN: the merged table covers the trials recorded; the card's merge.missing lists "
                         "every missing one")
        return lines


def combine(sources: Sequence[Source]) -> Merged:
    """Resolve duplicates, renumber attempts, find what is missing. Sources are of one experiment."""
    by_trial: dict[str, list[tuple[Attempt, int, str]]] = {}
    for order, source in enumerate(sources):
        trials = os.path.join(source.path, TRIALS)
        for attempt in source.attempts:
            by_trial.setdefault(attempt.trial_id, []).append((attempt, order, trials))
    kept_entries, trajectories, duplicates = [], [], 0
    for found in by_trial.values():
        if len(found) > 1:
            found.sort(key=lambda entry: (entry[0].finished_at, entry[1]))
        kept = []
        for entry in found:
            kept.append(entry)
            if entry[0].outcome != INFRA:
                break
        duplicates += len(found) - len(kept)
        for number, (attempt, _, trials) in enumerate(kept, start=1):
            line = attempt.record.renumbered(number)  # renumbered: the trajectory's name changes too
            old_key = attempt_key(attempt.trial_id, attempt.number)
            new_key = attempt_key(attempt.trial_id, number)
            kept_entries.append((attempt.finished_at, attempt.trial_id, number, line, attempt.key))
            trajectories.append((os.path.join(trials, old_key + ".json"), new_key))
    kept_entries.sort(key=lambda entry: entry[:3])
    trial_ids = [entry[1] for entry in kept_entries]
    lines = [entry[3] for entry in kept_entries]
    total = int(sources[0].shard.get("total", 1))
    present = sorted({source.index for source in sources})
    recorded = {entry[4] for entry in kept_entries}
    missing_trials: dict[str, list[str]] = {}
    for source in sources:
        share = source.shard.get("trials")
        if share is not None:
            label = f"{source.index}/{total}"
            missing_trials[label] = sorted(set(missing_trials.get(label, share)) & (set(share) - recorded))
    missing_shards = [i for i in range(1, total + 1) if i not in present]
    merged = Merged(trial_ids, lines, trajectories, total, present, missing_shards, missing_trials,
                    duplicates=duplicates)
    if missing_shards:
        _list_missing_shards(merged, sources, recorded)
    return merged


def _list_missing_shards(merged: Merged, sources: Sequence[Source], recorded: set[str]) -> None:
    """The trials of shards nobody gave, recomputed from the collection as every shard computed its share."""
    from .shard import assign, collection_digest

    plan = next((s.shard for s in sources if s.shard.get("task_ids") is not None), None)
    collected = _recompute(sources[0].card, plan) if plan else None
    if collected is None or collection_digest(collected) != plan.get("collection_sha256"):
        merged.unknown_shards = list(merged.missing_shards)
        return
    shares = assign(collected.items(), merged.total)
    for index in merged.missing_shards:
        merged.missing_trials[f"{index}/{merged.total}"] = sorted(
            t for t, share in shares.items() if share == index and t not in recorded)


def _recompute(card: dict, plan: dict) -> dict[str, tuple[str, str]] | None:
    """Every collected trial key -> its cell, from the task ids and the settings (as the plugin makes them);
    None when the settings cannot be parsed back (the caller then cannot list a missing shard's trials)."""
    from .config import ConfigError, parse_models, parse_multipliers
    from .shard import trial_key
    from .trial import make_cases

    settings = card.get("settings") or {}
    try:
        cases = make_cases(parse_models(",".join(settings["models"])),
                           parse_multipliers(",".join(settings["multipliers"])), int(settings["samples"]))
    except (ConfigError, KeyError, TypeError, ValueError):
        return None
    collected = {}
    for task_id in plan["task_ids"]:
        for case in cases:
            collected[trial_key(task_id, case.id)] = case.cell
    return collected


def merged_card(sources: Sequence[Source], merged: Merged) -> dict:
    """The first shard's card (the experiment, which every shard shares) with the merge's own facts."""
    first = min(sources, key=lambda s: s.index)
    card = copy.deepcopy(first.card)
    run_ids = sorted({s.card.get("run_id") or "" for s in sources})
    card["run_id"] = "merged-" + hashlib.sha256("\n".join(run_ids).encode()).hexdigest()[:12]
    card["started_at"] = min((s.card.get("started_at") for s in sources if s.card.get("started_at")), default=None)
    finished = [s.card.get("finished_at") for s in sources]
    card["finished_at"] = max(finished) if all(finished) else None
    card["shard"] = None
    card.setdefault("settings", {})["shard"] = None  # the whole, from every shard
    card["provenance"] = None  # each shard's is in "shards"
    card["shards"] = [s.provenance() for s in sorted(sources, key=lambda s: (s.index, str(s.path)))]
    card["trials_recorded"] = len(merged.trial_ids)
    card["merge"] = {"merged_at": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
                     "shards_total": merged.total, "shards_present": merged.present,
                     "partial": merged.partial, "duplicates_left_out": merged.duplicates,
                     "missing": {"shards": [f"{i}/{merged.total}" for i in merged.missing_shards],
                                 "shards_with_unknown_trials": [f"{i}/{merged.total}" for i in merged.unknown_shards],
                                 "trials": {k: v for k, v in merged.missing_trials.items() if v}}}
    return card


def merge(out: Path, run_dirs: Sequence[Path]) -> Merged:
    """Write OUT from ``run_dirs``; returns what was merged. Raises MergeError (nothing written)."""
    out = Path(out)
    if not run_dirs:
        raise MergeError("name the shards' run directories: harnessbench merge OUT RUN_DIR...")
    resolved = [Path(p).resolve() for p in run_dirs]
    if out.resolve() in resolved:
        raise MergeError(f"{out} is one of the shards; write the merged run to a new directory")
    if len(set(resolved)) != len(resolved):
        raise MergeError("a run directory is named twice")
    if out.exists() and not _replaceable(out):
        raise MergeError(f"{out} exists and is not an earlier merge; choose a new directory")
    sources = [load(Path(p)) for p in run_dirs]
    check_same_experiment(sources)
    merged = combine(sources)
    _write(out, merged_card(sources, merged), merged)
    return merged


def _replaceable(out: Path) -> bool:
    """An empty directory, or one an earlier merge wrote (merging again replaces it)."""
    if out.is_dir() and not any(out.iterdir()):
        return True
    card = RunDir(out).card()
    return bool(card and card.get("merge"))


def _write(out: Path, card: dict, merged: Merged) -> None:
    """Everything into ``.OUT.merging``, then renamed over OUT (an earlier merge is removed only then)."""
    staging = out.with_name(f".{out.name}.merging-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / TRIALS).mkdir(parents=True)
        store = RunStore(staging)
        store.write_card(card)
        write_results(staging, merged.result_lines)
        trials = os.path.join(staging, TRIALS)
        for source, key in merged.trajectories:
            _link(source, os.path.join(trials, f"{key}.json"))
        if out.exists():
            old = out.with_name(f".{out.name}.replaced-{os.getpid()}")
            os.rename(out, old)
            os.rename(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(staging, out)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _link(source: str, target: str) -> None:
    """A hard link where the file system allows (no copy of 100,000 trajectories), else a copy; a trajectory
    that is missing (its process died before writing it) is left missing, as in the shard."""
    try:
        os.link(source, target)
    except FileNotFoundError:
        return
    except OSError:
        shutil.copyfile(source, target)
