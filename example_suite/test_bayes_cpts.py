"""Estimate a Bayesian network's conditional probability tables from survey data."""

import pytest

import _tasks as T

LEAN = T.python_script("""
import csv, itertools, json
from collections import Counter
net = json.load(open("network.json"))
names = list(net)
with open("survey.csv", newline="") as f:
    reader = csv.reader(f)
    header = next(reader)
    columns = [header.index(name) for name in names]
    joint = Counter(tuple(row[i] for i in columns) for row in reader)  # at most 216 cells
cpts = {}
for var, spec in net.items():
    at = [names.index(p) for p in spec["parents"]]
    counts = {}
    for cell, n in joint.items():
        counts.setdefault(tuple(cell[i] for i in at), Counter())[cell[names.index(var)]] += n
    table = {}
    for cfg in itertools.product(*(net[p]["values"] for p in spec["parents"])):
        c = counts.get(cfg, Counter())
        total = sum(c.values())
        key = ",".join(f"{p}={v}" for p, v in zip(spec["parents"], cfg))
        table[key] = {v: (c[v] / total if total else 1 / len(spec["values"])) for v in spec["values"]}
    cpts[var] = table
json.dump(cpts, open("cpts.json", "w"), indent=2)
""")

HEAVY = T.python_script("""
import csv, json
from collections import Counter
net = json.load(open("network.json"))
rows = list(csv.DictReader(open("survey.csv", newline="")))  # every respondent as a dict
columns = {name: [r[name] for r in rows] for name in net}
cpts = {}
for var, spec in net.items():
    parents = [columns[p] for p in spec["parents"]]
    joint = Counter(zip(*parents, columns[var]))
    totals = Counter(zip(*parents)) if parents else Counter({(): len(rows)})
    cpts[var] = {",".join(f"{p}={v}" for p, v in zip(spec["parents"], cfg)):
                 {v: joint[(*cfg, v)] / n for v in spec["values"]} for cfg, n in totals.items()}
json.dump(cpts, open("cpts.json", "w"), indent=2)
""")

@pytest.mark.task(cpus=1, memory="64Mi", timeout=60, image=T.IMAGE,
                  solutions={"lean": LEAN, "heavy": HEAVY})
def test_bayes_cpts(trial):
    trial.sandbox.write_file("network.json", T.bayes_structure_json())
    trial.sandbox.write_file("survey.csv", T.bayes_csv())  # 130,000 respondents
    trial.run_agent(
        "survey.csv holds one row per respondent of a commuting survey; network.json gives a Bayesian "
        "network over its columns (each variable's values and parents). Estimate every conditional "
        "probability table by maximum likelihood and write cpts.json: for each variable, an object "
        "keyed by the parent configuration written as 'Parent1=value,Parent2=value' (parents in the "
        "order network.json lists them; the empty string for a variable without parents), whose value "
        "maps each of the variable's values to its probability.")
    problems = T.bayes_check_cpts(T.read_json(trial.sandbox, "cpts.json"))
    assert not problems, "; ".join(problems[:5])
