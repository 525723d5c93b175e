"""Run a project's test suite with several worker processes and report per-test outcomes."""

import pytest

import _tasks as T

LEAN = T.python_script('''
import gc, importlib, json, multiprocessing, os, sys
from pathlib import Path
os.chdir("proj")
sys.path.insert(0, os.getcwd())

def run_module(path):
    module = importlib.import_module(path[:-3].replace("/", "."))
    results = {}
    for name, func in vars(module).items():
        if name.startswith("test_") and callable(func):
            try:
                func()
                results[f"{path}::{name}"] = "passed"
            except Exception:
                results[f"{path}::{name}"] = "failed"
    return results

paths = sorted(p.as_posix() for p in Path("tests").glob("test_*.py"))
import tests.fixtures  # load the shared test data once, before forking:
gc.freeze()            # the workers share it copy-on-write (gc.freeze keeps the collector off its pages)
results = {}
with multiprocessing.get_context("fork").Pool(8) as pool:  # 8 forked workers, reused
    for part in pool.imap_unordered(run_module, paths):
        results.update(part)
Path("test_results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\\n")
''')

HEAVY = T.python_script('''
import json, subprocess, sys
from pathlib import Path
RUNNER = """
import importlib, json, sys
sys.path.insert(0, ".")
path = sys.argv[1]
module = importlib.import_module(path[:-3].replace("/", "."))
results = {}
for name, func in vars(module).items():
    if name.startswith("test_") and callable(func):
        try:
            func()
            results[f"{path}::{name}"] = "passed"
        except Exception:
            results[f"{path}::{name}"] = "failed"
print(json.dumps(results))
"""
paths = sorted(p.relative_to("proj").as_posix() for p in Path("proj/tests").glob("test_*.py"))
# One fresh interpreter per test file, all started at once.
procs = [subprocess.Popen([sys.executable, "-c", RUNNER, p], cwd="proj", stdout=subprocess.PIPE) for p in paths]
results = {}
for proc in procs:
    results.update(json.loads(proc.communicate()[0]))
Path("proj/test_results.json").write_text(json.dumps(results, indent=1, sort_keys=True) + "\\n")
''')


@pytest.mark.task(cpus=2, memory="112Mi", timeout=60, image=T.IMAGE,
                  solutions={"lean": LEAN, "heavy": HEAVY})
def test_parallel_suite(trial):
    T.write_tree(trial.sandbox, T.project_files())  # proj/: textkit/, tests/ (16 modules), stale results
    trial.run_agent(
        "proj/ is a Python project whose tests are the functions named test_* in proj/tests/test_*.py "
        "(pytest is not installed; a test passes if it returns without raising; run with proj/ as the "
        "working directory so that 'textkit' and 'tests' import). The suite is slow serially: run it "
        "with several worker processes in parallel, then overwrite proj/test_results.json with "
        "{\"tests/test_file.py::test_name\": \"passed\" or \"failed\"} for every test.")
    got = T.read_json(trial.sandbox, "proj/test_results.json")
    assert isinstance(got, dict), "test_results.json must hold a JSON object"
    want = T.project_expected()
    wrong = sorted(k for k in want.keys() | got.keys() if got.get(k) != want.get(k))
    assert not wrong, f"{len(wrong)} wrong or missing entries in test_results.json, e.g. {wrong[:3]}"
