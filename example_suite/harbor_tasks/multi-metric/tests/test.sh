#!/bin/bash
# Two rewards: the report exists and parses; its numbers are right.
python3 - <<'PY'
import csv, json
rewards = {"parses": 0, "correct": 0}
try:
    report = json.load(open("/app/report.json"))
    rewards["parses"] = 1
    expected = {}
    for row in csv.DictReader(open("/app/orders.csv")):
        expected[row["customer"]] = expected.get(row["customer"], 0) + int(row["amount"])
    expected["_total"] = sum(expected.values())
    rewards["correct"] = int(report == expected)
except (OSError, ValueError):
    pass
json.dump(rewards, open("/logs/verifier/reward.json", "w"))
PY
