#!/bin/bash
python3 - <<'PY'
import csv, json
totals = {}
for row in csv.DictReader(open("orders.csv")):
    totals[row["customer"]] = totals.get(row["customer"], 0) + int(row["amount"])
totals["_total"] = sum(totals.values())
json.dump(totals, open("report.json", "w"))
PY
