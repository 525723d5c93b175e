"""Join three CSV tables and aggregate them into a JSON report."""

import pytest

import _tasks as T

LEAN = T.python_script("""
import csv, json
from collections import Counter
region = {r["customer_id"]: r["region"] for r in csv.DictReader(open("customers.csv", newline=""))}
category = {r["sku"]: r["category"] for r in csv.DictReader(open("products.csv", newline=""))}
cells, unmatched = {}, 0
with open("orders.csv", newline="") as f:
    reader = csv.reader(f)
    next(reader)
    for _, customer, sku, qty, price, ordered_at in reader:
        if customer not in region:
            unmatched += 1
            continue
        euros, cents = price.split(".")
        amount = int(qty) * (int(euros) * 100 + int(cents))
        cell = cells.setdefault((region[customer], ordered_at[:7]), [0, 0, 0, Counter()])
        cell[0] += 1
        cell[1] += int(qty)
        cell[2] += amount
        cell[3][category[sku]] += amount
report = {"regions": {}, "unmatched_orders": unmatched}
for (reg, month), (orders, units, revenue, by_cat) in sorted(cells.items()):
    top = min(by_cat, key=lambda c: (-by_cat[c], c))
    report["regions"].setdefault(reg, {})[month] = {
        "orders": orders, "units": units, "revenue": revenue / 100, "top_category": top}
json.dump(report, open("report.json", "w"), indent=2)
""")

HEAVY = T.python_script("""
import csv, json
orders = list(csv.DictReader(open("orders.csv", newline="")))
customers = {r["customer_id"]: r for r in csv.DictReader(open("customers.csv", newline=""))}
products = {r["sku"]: r for r in csv.DictReader(open("products.csv", newline=""))}
joined = [{**o, **customers[o["customer_id"]], **products[o["sku"]], "month": o["ordered_at"][:7]}
          for o in orders if o["customer_id"] in customers]  # one wide row per order
cells = {}
for r in joined:
    cell = cells.setdefault((r["region"], r["month"]), {"orders": 0, "units": 0, "revenue": 0.0, "by_cat": {}})
    amount = int(r["quantity"]) * float(r["unit_price"])
    cell["orders"] += 1
    cell["units"] += int(r["quantity"])
    cell["revenue"] += amount
    cell["by_cat"][r["category"]] = cell["by_cat"].get(r["category"], 0.0) + amount
report = {"regions": {}, "unmatched_orders": len(orders) - len(joined)}
for (reg, month), cell in sorted(cells.items()):
    by_cat = cell.pop("by_cat")
    cell["revenue"] = round(cell["revenue"], 2)
    cell["top_category"] = min(by_cat, key=lambda c: (-round(by_cat[c], 2), c))
    report["regions"].setdefault(reg, {})[month] = cell
json.dump(report, open("report.json", "w"), indent=2)
""")

@pytest.mark.task(cpus=1, memory="64Mi", timeout=60, image=T.IMAGE,
                  solutions={"lean": LEAN, "heavy": HEAVY})
def test_orders_report(trial):
    T.write_tree(trial.sandbox, T.orders_tables())  # orders.csv (105,000 rows), customers.csv, products.csv
    trial.run_agent(
        "Join orders.csv with customers.csv (on customer_id) and products.csv (on sku) and write "
        "report.json: {\"regions\": {REGION: {\"YYYY-MM\": {\"orders\": N, \"units\": total quantity, "
        "\"revenue\": sum of quantity*unit_price rounded to cents, \"top_category\": the product category "
        "with the most revenue, ties alphabetically}}}, \"unmatched_orders\": N}, where the month comes "
        "from ordered_at and orders whose customer is not in customers.csv are only counted in "
        "unmatched_orders.")
    problems = T.orders_check_report(T.read_json(trial.sandbox, "report.json"))
    assert not problems, "; ".join(problems[:5])
