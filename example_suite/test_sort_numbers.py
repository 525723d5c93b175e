"""Sort a large file of integers numerically."""

import pytest

import _tasks as T

LEAN = "sort -n -S 8M data.txt -o sorted.txt"  # external merge sort with a small buffer

HEAVY = T.python_script("""
lines = open("data.txt").readlines()
numbers = sorted(int(line) for line in lines)
open("sorted.txt", "w").write("".join(f"{n}\\n" for n in numbers))
""")


@pytest.mark.task(cpus=1, memory="64Mi", timeout=60, image=T.IMAGE,
                  solutions={"lean": LEAN, "heavy": HEAVY})
def test_sort_numbers(trial):
    trial.sandbox.write_file("data.txt", T.sort_input())  # 560,000 integers, some negative, some repeated
    trial.run_agent("data.txt holds one integer per line. Write them to sorted.txt sorted numerically "
                    "in ascending order, one per line, keeping duplicates.")
    digest = trial.sandbox.exec("set -o pipefail; test -f sorted.txt && awk 1 sorted.txt | sha256sum")
    assert digest.exit_code == 0, "sorted.txt was not written"
    if digest.stdout.split()[0] != T.sort_expected_sha256():
        unsorted = trial.sandbox.exec("sort -n -c sorted.txt 2>&1").stdout.strip()
        raise AssertionError(f"sorted.txt is not data.txt sorted numerically: {unsorted or 'same order, other numbers'}")
