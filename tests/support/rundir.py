"""Reading a run directory's files as they lie on disk (tests check the files, not the reader in store.py)."""

from __future__ import annotations

import json
from pathlib import Path


def results(run_dir: Path) -> list[dict]:
    """results.jsonl, one dict per line."""
    return [json.loads(line) for line in (Path(run_dir) / "results.jsonl").read_text().splitlines()]


def last_trajectory(run_dir: Path, record: dict) -> dict:
    """The last attempt's trajectory of a trial, from trials/<trial_id>.json."""
    return json.loads((Path(run_dir) / "trials" / f"{record['trial_id']}.json").read_text())["trajectories"][-1]
