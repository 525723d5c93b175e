"""Inputs and expected answers for the example tasks (shared by the tests and the peak benchmark).

Every generator is deterministic (fixed seed) and cached per process, so a
bake-off pays for each data set once per worker, not once per trial. The
inputs are built in the test process and copied in with ``write_file``: on the
local backend their page cache is charged to the pytest process, not to the
trial's cgroup, so the measured peak is the solution's own.

Sizes are tuned (see README.md) so that each ``lean`` solution peaks at about
0.4x of its task's memory spec or less and each ``heavy`` one needs 1.4x-2.4x
of it (killed at 1x, fine at 3x and uncapped); the linker's heavy mode is the
exception on purpose, its peak is random between about 0.8x and 3.3x.
Change a size here and re-measure (README.md says how).
"""

from __future__ import annotations

import csv
import functools
import hashlib
import io
import json
import random
import re
from collections import Counter, defaultdict

IMAGE = "harnessbench/python:3.11"


def python_script(source: str) -> str:
    """A bash command that runs ``source`` with python3 (a quoted heredoc: no shell expansion)."""
    return f"python3 - <<'PY'\n{source.strip()}\nPY"


def sha256(data: bytes | str) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


# ---------------------------------------------------------------- sort_numbers

SORT_COUNT = 560_000
SORT_SEED = 11


@functools.cache
def sort_numbers() -> list[int]:
    rng = random.Random(SORT_SEED)
    # Duplicates and negatives on purpose: `sort` without -n gets it wrong.
    return [rng.randrange(-(10**9), 10**9) for _ in range(SORT_COUNT)]


@functools.cache
def sort_input() -> bytes:
    return ("\n".join(map(str, sort_numbers())) + "\n").encode()


@functools.cache
def sort_expected_sha256() -> str:
    """Digest of the right answer, one integer per line with a final newline."""
    return sha256("\n".join(map(str, sorted(sort_numbers()))) + "\n")


# ---------------------------------------------------------------- word_frequencies

WORDS_TOKENS = 900_000
WORDS_VOCABULARY = 6_000
WORDS_SEED = 23
WORDS_TOP = 25
WORD_RE = re.compile(r"[A-Za-z]+")


def _pseudo_words(rng: random.Random, n: int) -> list[str]:
    onsets = ["b", "br", "c", "ch", "d", "f", "g", "gr", "h", "j", "k", "l", "m", "n", "p",
              "pl", "r", "s", "st", "t", "th", "tr", "v", "w", "z"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ea", "ou"]
    codas = ["", "", "n", "r", "s", "t", "ck", "ng", "st"]
    seen: set[str] = set()
    words: list[str] = []
    while len(words) < n:
        word = "".join(rng.choice(onsets) + rng.choice(vowels) for _ in range(rng.choice((1, 1, 2, 2, 3))))
        word += rng.choice(codas)
        if word not in seen:
            seen.add(word)
            words.append(word)
    return words


@functools.cache
def words_corpus() -> str:
    """About 6 MB of sentences over a Zipf-distributed vocabulary.

    Sentence starts are capitalised, some words are proper nouns (always
    capitalised), some are hyphenated compounds and some tokens are numbers, so
    "a word is a maximal run of ASCII letters, case-insensitive" matters.
    """
    rng = random.Random(WORDS_SEED)
    vocab = _pseudo_words(rng, WORDS_VOCABULARY)
    for i in range(7, len(vocab), 23):
        vocab[i] = vocab[i].capitalize()
    for i in range(11, len(vocab), 37):
        vocab[i] = f"{vocab[i]}-{vocab[i - 5]}"
    for i in range(13, len(vocab), 41):
        vocab[i] = str(1900 + i % 120)
    weights, total = [], 0.0
    for rank in range(1, len(vocab) + 1):
        total += 1.0 / rank**1.07
        weights.append(total)
    tokens = rng.choices(vocab, cum_weights=weights, k=WORDS_TOKENS)
    punct = [". ", ", ", "; ", "? ", "! ", ": "]
    out = []
    i = 0
    while i < len(tokens):
        n = rng.randrange(5, 19)
        sentence = " ".join(tokens[i:i + n])
        out.append(sentence[:1].upper() + sentence[1:] + rng.choice(punct))
        i += n
        if rng.random() < 0.12:
            out.append("\n")
    return "".join(out).replace(" \n", "\n") + "\n"


@functools.cache
def words_expected_top() -> list[tuple[str, int]]:
    counts = Counter(w.lower() for w in WORD_RE.findall(words_corpus()))
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:WORDS_TOP]


# ---------------------------------------------------------------- bayes_cpts

BAYES_ROWS = 130_000
BAYES_SEED = 5
BAYES_TOLERANCE = 0.03

# A small commuting network. Not a textbook one, so its tables must come from the data.
BAYES_NETWORK: dict[str, dict] = {
    "Weather": {"values": ["sunny", "cloudy", "rainy"], "parents": [],
                "cpt": {(): [0.45, 0.33, 0.22]}},
    "Strike": {"values": ["no", "yes"], "parents": [],
               "cpt": {(): [0.87, 0.13]}},
    "Traffic": {"values": ["light", "heavy"], "parents": ["Weather"],
                "cpt": {("sunny",): [0.71, 0.29], ("cloudy",): [0.58, 0.42], ("rainy",): [0.36, 0.64]}},
    "Train": {"values": ["ontime", "delayed", "cancelled"], "parents": ["Strike"],
              "cpt": {("no",): [0.81, 0.16, 0.03], ("yes",): [0.22, 0.31, 0.47]}},
    "Mode": {"values": ["car", "train", "bike"], "parents": ["Weather", "Train"],
             "cpt": {("sunny", "ontime"): [0.28, 0.41, 0.31], ("sunny", "delayed"): [0.37, 0.33, 0.30],
                     ("sunny", "cancelled"): [0.62, 0.04, 0.34], ("cloudy", "ontime"): [0.33, 0.47, 0.20],
                     ("cloudy", "delayed"): [0.44, 0.39, 0.17], ("cloudy", "cancelled"): [0.74, 0.05, 0.21],
                     ("rainy", "ontime"): [0.45, 0.49, 0.06], ("rainy", "delayed"): [0.55, 0.39, 0.06],
                     ("rainy", "cancelled"): [0.88, 0.03, 0.09]}},
    "Late": {"values": ["no", "yes"], "parents": ["Mode", "Traffic"],
             "cpt": {("car", "light"): [0.86, 0.14], ("car", "heavy"): [0.49, 0.51],
                     ("train", "light"): [0.77, 0.23], ("train", "heavy"): [0.74, 0.26],
                     ("bike", "light"): [0.93, 0.07], ("bike", "heavy"): [0.90, 0.10]}},
}
BAYES_ORDER = ["Weather", "Strike", "Traffic", "Train", "Mode", "Late"]  # topological
BAYES_COLUMNS = ["respondent", "Late", "Mode", "Strike", "Traffic", "Train", "Weather"]


def bayes_key(parents: list[str], assignment: tuple[str, ...]) -> str:
    """The key of one parent configuration in cpts.json: ``Weather=sunny,Train=ontime`` ('' for none)."""
    return ",".join(f"{p}={v}" for p, v in zip(parents, assignment))


def bayes_structure_json() -> str:
    """What the agent is given: variables, their values and parents; no probabilities."""
    return json.dumps({name: {"values": BAYES_NETWORK[name]["values"], "parents": BAYES_NETWORK[name]["parents"]}
                       for name in BAYES_ORDER}, indent=2) + "\n"


def bayes_true_cpts() -> dict[str, dict[str, dict[str, float]]]:
    """The generating tables in the cpts.json format."""
    out = {}
    for name, node in BAYES_NETWORK.items():
        out[name] = {bayes_key(node["parents"], cfg): dict(zip(node["values"], probs))
                     for cfg, probs in node["cpt"].items()}
    return out


@functools.cache
def bayes_csv() -> str:
    rng = random.Random(BAYES_SEED)
    cum = {name: {cfg: [sum(p[:i + 1]) for i in range(len(p))] for cfg, p in node["cpt"].items()}
           for name, node in BAYES_NETWORK.items()}
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(BAYES_COLUMNS)
    rid = 100_000
    for _ in range(BAYES_ROWS):
        row: dict[str, str] = {}
        for name in BAYES_ORDER:
            node = BAYES_NETWORK[name]
            c = cum[name][tuple(row[p] for p in node["parents"])]
            u = rng.random()
            k = 0
            while k < len(c) - 1 and u >= c[k]:
                k += 1
            row[name] = node["values"][k]
        rid += rng.randrange(1, 9)
        row["respondent"] = f"R{rid}"
        w.writerow([row[c] for c in BAYES_COLUMNS])
    return buf.getvalue()


@functools.cache
def bayes_mle() -> dict[str, dict[str, dict[str, float]]]:
    """Maximum-likelihood tables of the generated data (used to check the seed, not the agent)."""
    counts: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for row in csv.DictReader(io.StringIO(bayes_csv())):
        for name, node in BAYES_NETWORK.items():
            counts[name, bayes_key(node["parents"], tuple(row[p] for p in node["parents"]))][row[name]] += 1
    out: dict[str, dict[str, dict[str, float]]] = defaultdict(dict)
    for (name, key), c in counts.items():
        n = sum(c.values())
        out[name][key] = {v: c[v] / n for v in BAYES_NETWORK[name]["values"]}
    return dict(out)


def bayes_check_cpts(got: object, tolerance: float = BAYES_TOLERANCE) -> list[str]:
    """Problems with an estimated cpts.json against the generating network (empty list: fine)."""
    problems: list[str] = []
    if not isinstance(got, dict):
        return [f"cpts.json must hold a JSON object, not {type(got).__name__}"]
    for name, table in bayes_true_cpts().items():
        est = got.get(name)
        if not isinstance(est, dict):
            problems.append(f"{name}: missing")
            continue
        for key, dist in table.items():
            row = est.get(key)
            if not isinstance(row, dict):
                problems.append(f"{name}[{key!r}]: missing")
                continue
            try:
                total = sum(float(row.get(v, 0.0)) for v in dist)
                worst = max(abs(float(row.get(v, 0.0)) - p) for v, p in dist.items())
            except (TypeError, ValueError):
                problems.append(f"{name}[{key!r}]: not numbers: {row!r}")
                continue
            if abs(total - 1) > 1e-3:
                problems.append(f"{name}[{key!r}]: sums to {total:.4f}")
            elif worst > tolerance:
                problems.append(f"{name}[{key!r}]: {row} is off by {worst:.3f} (tolerance {tolerance})")
    return problems


# ---------------------------------------------------------------- orders_report

ORDERS_ROWS = 105_000
ORDERS_SEED = 42
ORDERS_REGIONS = ["north", "south", "east", "west", "central"]
ORDERS_CATEGORIES = ["books", "garden", "kitchen", "toys", "sports", "office", "music", "tools"]


@functools.cache
def orders_tables() -> dict[str, str]:
    """customers.csv, products.csv and orders.csv (1% of orders name an unknown customer)."""
    rng = random.Random(ORDERS_SEED)
    files = {}
    customers = [(f"C{10000 + i}", rng.choice(ORDERS_REGIONS)) for i in range(3000)]
    files["customers.csv"] = "customer_id,name,region\n" + "".join(
        f"{cid},Customer {cid[1:]},{region}\n" for cid, region in customers)
    products = [(f"SKU-{i:04d}", rng.choice(ORDERS_CATEGORIES), rng.randrange(199, 15000)) for i in range(400)]
    files["products.csv"] = "sku,category,title\n" + "".join(
        f"{sku},{cat},Item {sku[4:]}\n" for sku, cat, _ in products)
    lines = ["order_id,customer_id,sku,quantity,unit_price,ordered_at\n"]
    cids = [c for c, _ in customers]
    for i in range(ORDERS_ROWS):
        cid = rng.choice(cids) if rng.random() >= 0.01 else f"C{90000 + rng.randrange(500)}"
        sku, _, cents = rng.choice(products)
        cents += rng.randrange(-50, 51)  # prices drift
        qty = rng.choice((1, 1, 1, 2, 2, 3, 4, 6, 12))
        lines.append(f"O{500000 + i},{cid},{sku},{qty},{cents // 100}.{cents % 100:02d},"
                     f"2024-{rng.randrange(1, 13):02d}-{rng.randrange(1, 29):02d}T{rng.randrange(24):02d}:"
                     f"{rng.randrange(60):02d}:00Z\n")
    files["orders.csv"] = "".join(lines)
    return files


@functools.cache
def orders_expected() -> dict:
    """The right report.json, with revenue in integer cents (so it is exact)."""
    t = orders_tables()
    region = {r["customer_id"]: r["region"] for r in csv.DictReader(io.StringIO(t["customers.csv"]))}
    category = {r["sku"]: r["category"] for r in csv.DictReader(io.StringIO(t["products.csv"]))}
    agg: dict = {}
    unmatched = 0
    for r in csv.DictReader(io.StringIO(t["orders.csv"])):
        if r["customer_id"] not in region:
            unmatched += 1
            continue
        euros, cents = r["unit_price"].split(".")
        amount = int(r["quantity"]) * (int(euros) * 100 + int(cents))
        cell = agg.setdefault(region[r["customer_id"]], {}).setdefault(
            r["ordered_at"][:7], {"orders": 0, "units": 0, "revenue": 0, "by_cat": Counter()})
        cell["orders"] += 1
        cell["units"] += int(r["quantity"])
        cell["revenue"] += amount
        cell["by_cat"][category[r["sku"]]] += amount
    for months in agg.values():
        for cell in months.values():
            by_cat = cell.pop("by_cat")
            cell["top_category"] = min(by_cat, key=lambda c: (-by_cat[c], c))
    return {"regions": agg, "unmatched_orders": unmatched}


def orders_check_report(got: object) -> list[str]:
    """Problems with report.json (revenue compared to the cent)."""
    want = orders_expected()
    if not isinstance(got, dict) or not isinstance(got.get("regions"), dict):
        return ["report.json must be an object with a 'regions' object"]
    problems = []
    if got.get("unmatched_orders") != want["unmatched_orders"]:
        problems.append(f"unmatched_orders: {got.get('unmatched_orders')!r}, want {want['unmatched_orders']}")
    if sorted(got["regions"]) != sorted(want["regions"]):
        problems.append(f"regions: {sorted(got['regions'])}, want {sorted(want['regions'])}")
        return problems
    for reg, months in want["regions"].items():
        gm = got["regions"][reg]
        if not isinstance(gm, dict) or sorted(gm) != sorted(months):
            problems.append(f"{reg}: months {sorted(gm) if isinstance(gm, dict) else gm!r}")
            continue
        for month, cell in months.items():
            g = gm[month]
            try:
                ok = (g["orders"] == cell["orders"] and g["units"] == cell["units"]
                      and round(float(g["revenue"]) * 100) == cell["revenue"]
                      and g["top_category"] == cell["top_category"])
            except (TypeError, KeyError, ValueError):
                ok = False
            if not ok:
                want_cell = {**cell, "revenue": cell["revenue"] / 100}
                problems.append(f"{reg} {month}: {g!r}, want {want_cell}")
    return problems


# ---------------------------------------------------------------- parallel_tests

# A small library with three real bugs, and a generated suite over it.
PROJECT_LIBRARY = {
    "proj/textkit/__init__.py": '"""Small text and number utilities."""\n',
    "proj/textkit/stats.py": '''\
def mean(xs):
    return sum(xs) / len(xs)


def median(xs):
    s = sorted(xs)
    return s[len(s) // 2]  # BUG: wrong for an even number of values


def spread(xs):
    return max(xs) - min(xs)
''',
    "proj/textkit/strings.py": '''\
import re


def slugify(text):
    text = re.sub(r"[^a-z0-9]", "-", text.lower())
    return text.strip("-")  # BUG: runs of dashes are not collapsed


def vowels(text):
    return sum(ch in "aeiou" for ch in text.lower())


def is_palindrome(text):
    letters = [ch for ch in text.lower() if ch.isalnum()]
    return letters == letters[::-1]
''',
    "proj/textkit/numbers.py": '''\
def is_prime(n):
    if n < 2:
        return n == 1  # BUG: 1 is not prime
    i = 2
    while i * i <= n:
        if n % i == 0:
            return False
        i += 1
    return True


def gcd(a, b):
    while b:
        a, b = b, a % b
    return abs(a)


def digits_sum(n):
    return sum(int(d) for d in str(abs(n)))
''',
}

PROJECT_FILES = 16
PROJECT_TESTS_PER_FILE = 6
PROJECT_FIXTURE_ROWS = 16_000
PROJECT_SEED = 3
PROJECT_RESULTS = "test_results.json"

_FIXTURES_PY = '''\
"""Shared test data, loaded when a test module is imported (like a session fixture)."""
import csv
import os

_HERE = os.path.dirname(__file__)
with open(os.path.join(_HERE, "data", "cities.csv"), newline="") as f:
    CITIES = list(csv.DictReader(f))
POPULATION = {row["name"]: int(row["population"]) for row in CITIES}
'''


def _reference(func: str, args: tuple) -> object:
    """What each library function should return."""
    if func == "median":
        s = sorted(args[0])
        n = len(s)
        return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2
    if func == "slugify":
        return re.sub(r"-+", "-", re.sub(r"[^a-z0-9]", "-", args[0].lower())).strip("-")
    if func == "is_prime":
        n = args[0]
        return n >= 2 and all(n % i for i in range(2, int(n**0.5) + 1))
    namespace: dict = {}
    for source in PROJECT_LIBRARY.values():
        exec(source, namespace)  # noqa: S102 - the bug-free functions are their own reference
    return namespace[func](*args)


@functools.cache
def _project() -> tuple[dict[str, str], dict[str, str]]:
    rng = random.Random(PROJECT_SEED)
    files = dict(PROJECT_LIBRARY)
    files["proj/tests/__init__.py"] = ""
    files["proj/tests/fixtures.py"] = _FIXTURES_PY
    files["proj/tests/data/cities.csv"] = "name,country,population,lat,lon\n" + "".join(
        f"city{i:05d},{rng.choice(['FR', 'DE', 'NO', 'JP', 'BR', 'KE'])},{rng.randrange(1000, 9_000_000)},"
        f"{rng.uniform(-60, 70):.4f},{rng.uniform(-180, 180):.4f}\n" for i in range(PROJECT_FIXTURE_ROWS))
    makers = {
        "median": lambda: ([rng.randrange(100) for _ in range(rng.randrange(1, 8))],),
        "mean": lambda: ([rng.randrange(100) for _ in range(rng.randrange(1, 8))],),
        "spread": lambda: ([rng.randrange(100) for _ in range(rng.randrange(1, 8))],),
        "slugify": lambda: (rng.choice(["Hello World", "A  B", "Rock & Roll!", "already-slug", "x--y", "Tab\tsep"]),),
        "vowels": lambda: (rng.choice(["banana", "Queue", "rhythm", "AEIOU"]),),
        "is_palindrome": lambda: (rng.choice(["Racecar", "No lemon, no melon", "python"]),),
        "is_prime": lambda: (rng.choice([0, 1, 2, 9, 13, 97, 91, 1, 7919]),),
        "gcd": lambda: (rng.randrange(1, 500), rng.randrange(1, 500)),
        "digits_sum": lambda: (rng.randrange(-10**6, 10**6),),
    }
    module_of = {"median": "stats", "mean": "stats", "spread": "stats", "slugify": "strings",
                 "vowels": "strings", "is_palindrome": "strings", "is_prime": "numbers",
                 "gcd": "numbers", "digits_sum": "numbers"}
    library: dict = {}
    for path, source in PROJECT_LIBRARY.items():
        exec(source, library)  # noqa: S102 - to know which generated tests the bugs make fail
    expected: dict[str, str] = {}
    for f in range(PROJECT_FILES):
        topic = ["stats", "strings", "numbers", "mixed"][f % 4]
        funcs = [fn for fn, m in module_of.items() if topic in ("mixed", m)]
        body = [f'"""Generated tests, group {f}."""\n',
                "import time\n\n",
                "from tests.fixtures import CITIES, POPULATION\n",
                "from textkit.numbers import digits_sum, gcd, is_prime\n",
                "from textkit.stats import mean, median, spread\n",
                "from textkit.strings import is_palindrome, slugify, vowels\n"]
        for t in range(PROJECT_TESTS_PER_FILE):
            func = rng.choice(funcs)
            args = makers[func]()
            want = _reference(func, args)
            name = f"test_{func}_{t}"
            body.append(f"\n\ndef {name}():\n    assert {func}({', '.join(map(repr, args))}) == {want!r}\n")
            expected[f"tests/test_group{f:02d}.py::{name}"] = "passed" if library[func](*args) == want else "failed"
        body.append("\n\ndef test_cities_service():\n"
                    "    time.sleep(0.15)  # waits on a (simulated) service: why the suite runs in parallel\n"
                    f"    assert len(CITIES) == {PROJECT_FIXTURE_ROWS} and all(p > 0 for p in POPULATION.values())\n")
        expected[f"tests/test_group{f:02d}.py::test_cities_service"] = "passed"
        files[f"proj/tests/test_group{f:02d}.py"] = "".join(body)
    # Results of an older CI run, from before the bugs: present, plausible, and wrong.
    files[f"proj/{PROJECT_RESULTS}"] = json.dumps(dict.fromkeys(expected, "passed"), indent=1) + "\n"
    return files, expected


def project_files() -> dict[str, str]:
    """The whole project: library, fixtures and their data, 16 test modules, stale CI results."""
    return _project()[0]


def project_expected() -> dict[str, str]:
    """``{"tests/test_groupNN.py::test_x": "passed" | "failed"}`` for the generated suite."""
    return dict(_project()[1])


# ---------------------------------------------------------------- link_firmware

LINK_OBJECTS = 32
LINK_SEED = 97
LINK_BASE = 0x0040_0000
LINK_ALIGN = 16

# The project's linker. Its default mode keeps everything in memory and, like a
# real LTO link, splits code generation into a number of partitions that
# depends on run-time heuristics; each partition works on its own copy of the
# image, so its peak memory differs from one run to the next. --no-keep-memory
# streams one object at a time (two passes), like GNU ld's option of that name.
LINKER_PY = r'''#!/usr/bin/env python3
"""ld.py - links toyobj object files into a flat binary image."""
import argparse
import os
import random
import sys

BASE = 0x00400000
ALIGN = 16


def read_header(path):
    """(name, size, defs{sym: off}, refs[(sym, off)]) of one object; stops at its data."""
    defs, refs, size, name = {}, [], None, None
    with open(path) as f:
        if f.readline().strip() != "!toyobj 1":
            sys.exit(f"ld.py: {path}: not a toyobj object file")
        for line in f:
            kind, *rest = line.split()
            if kind == "data":
                break
            if kind == "name":
                name = rest[0]
            elif kind == "size":
                size = int(rest[0])
            elif kind == "def":
                defs[rest[0]] = int(rest[1])
            elif kind == "ref":
                refs.append((rest[0], int(rest[1])))
    return name, size, defs, refs


def read_data(path):
    with open(path) as f:
        for line in f:
            if line.startswith("data"):
                break
        return bytes.fromhex("".join(line.strip() for line in f))


def layout(headers):
    bases, symbols, addr = [], {}, BASE
    for name, size, defs, _ in headers:
        addr = (addr + ALIGN - 1) // ALIGN * ALIGN
        bases.append(addr)
        for sym, off in defs.items():
            if sym in symbols:
                sys.exit(f"ld.py: duplicate symbol {sym} in {name}")
            symbols[sym] = addr + off
        addr += size
    return bases, symbols, addr


def patch(data, refs, symbols, name):
    data = bytearray(data)
    for sym, off in refs:
        if sym not in symbols:
            sys.exit(f"ld.py: {name}: undefined reference to {sym}")
        data[off:off + 4] = symbols[sym].to_bytes(4, "little")
    return data


def link_streaming(objects, out):
    headers = [read_header(p) for p in objects]
    bases, symbols, end = layout(headers)
    with open(out, "wb") as f:
        for path, (name, size, defs, refs), base in zip(objects, headers, bases):
            f.write(b"\0" * (base - BASE - f.tell()))
            f.write(patch(read_data(path), refs, symbols, name))
    return symbols


def link_in_memory(objects, out):
    texts = [open(p).read().splitlines() for p in objects]  # keep everything
    headers = [read_header(p) for p in objects]
    bases, symbols, end = layout(headers)
    sections = []
    for lines in texts:
        start = lines.index("data") + 1
        sections.append(bytes.fromhex("".join(lines[start:])))
    image = bytearray(end - BASE)
    for (name, size, defs, refs), base, data in zip(headers, bases, sections):
        image[base - BASE:base - BASE + size] = patch(data, refs, symbols, name)
    # Code generation in partitions, each on its own copy of the image. How many
    # depends on run-time heuristics (thread timing, in real linkers): random here.
    partitions = random.Random(os.urandom(8)).randint(7, 65)
    work = [bytearray(image) for _ in range(partitions)]
    for i, copy in enumerate(work):
        copy[i::partitions] = image[i::partitions]  # each partition checks its share
        assert copy == image
    with open(out, "wb") as f:
        f.write(image)
    return symbols


def main():
    ap = argparse.ArgumentParser(description=__doc__, fromfile_prefix_chars="@")
    ap.add_argument("objects", nargs="+", help="object files in link order (@FILE reads them from FILE)")
    ap.add_argument("-o", "--output", required=True, help="the image to write")
    ap.add_argument("--map", help="also write a link map: one 'ADDRESS SYMBOL' line per symbol")
    ap.add_argument("--no-keep-memory", action="store_true",
                    help="stream the objects (two passes) instead of holding them all in memory; "
                         "slower, but needs a small fraction of the memory")
    args = ap.parse_args()
    link = link_streaming if args.no_keep_memory else link_in_memory
    symbols = link(args.objects, args.output)
    if args.map:
        with open(args.map, "w") as f:
            for sym, addr in sorted(symbols.items(), key=lambda kv: (kv[1], kv[0])):
                f.write(f"{addr:08x} {sym}\n")


if __name__ == "__main__":
    main()
'''


@functools.cache
def link_project() -> dict[str, str | bytes]:
    """objs/*.o (toyobj text objects), link.order, tools/ld.py and a stale app.bin."""
    rng = random.Random(LINK_SEED)
    names = [f"{stem}{i:02d}" for i, stem in enumerate(
        rng.choice(["boot", "hal", "net", "fs", "ui", "drv", "sched", "crypto"]) for _ in range(LINK_OBJECTS))]
    sizes = [rng.randrange(60_000, 140_000) for _ in names]
    defs = {n: {f"{n}_fn{k}": rng.randrange(0, s - 4) for k in range(rng.randrange(3, 9))}
            for n, s in zip(names, sizes)}
    all_syms = [sym for d in defs.values() for sym in d]
    files: dict[str, str | bytes] = {"tools/ld.py": LINKER_PY}
    for n, s in zip(names, sizes):
        refs = sorted({rng.randrange(0, s - 4) // 4 * 4 for _ in range(rng.randrange(4, 20))})
        header = [f"!toyobj 1\nname {n}\nsize {s}\n"]
        header += [f"def {sym} {off}\n" for sym, off in defs[n].items()]
        header += [f"ref {rng.choice(all_syms)} {off}\n" for off in refs]
        hexdata = rng.randbytes(s).hex()
        body = "\n".join(hexdata[i:i + 64] for i in range(0, len(hexdata), 64))
        files[f"objs/{n}.o"] = "".join(header) + "data\n" + body + "\n"
    order = names[:]
    rng.shuffle(order)
    files["link.order"] = "".join(f"objs/{n}.o\n" for n in order)
    files["app.bin"] = b"\x7fSTALE build from last week\n" * 100
    return files


def _parse_obj(text: str):
    head, _, data = text.partition("\ndata\n")
    size, defs, refs = 0, {}, []
    for line in head.splitlines()[1:]:
        kind, *rest = line.split()
        if kind == "size":
            size = int(rest[0])
        elif kind == "def":
            defs[rest[0]] = int(rest[1])
        elif kind == "ref":
            refs.append((rest[0], int(rest[1])))
    return size, defs, refs, bytes.fromhex(data.replace("\n", ""))


@functools.cache
def link_expected() -> tuple[str, str]:
    """(sha256 of app.bin, text of app.map), from an independent implementation of the link."""
    files = link_project()
    objs = [_parse_obj(files[p]) for p in files["link.order"].split()]
    addr, symbols, bases = LINK_BASE, {}, []
    for size, defs, _, _ in objs:
        addr = -(-addr // LINK_ALIGN) * LINK_ALIGN
        bases.append(addr)
        symbols.update({s: addr + o for s, o in defs.items()})
        addr += size
    image = bytearray(addr - LINK_BASE)
    for (size, _, refs, data), base in zip(objs, bases):
        image[base - LINK_BASE:base - LINK_BASE + size] = data
        for sym, off in refs:
            image[base - LINK_BASE + off:base - LINK_BASE + off + 4] = symbols[sym].to_bytes(4, "little")
    link_map = "".join(f"{a:08x} {s}\n" for s, a in sorted(symbols.items(), key=lambda kv: (kv[1], kv[0])))
    return sha256(bytes(image)), link_map


def write_tree(sandbox, files: dict[str, str | bytes]) -> None:
    """Write several files into a sandbox (``write_file`` creates parent directories)."""
    for path, content in files.items():
        sandbox.write_file(path, content)


def read_json(sandbox, path: str) -> object:
    """A JSON output of the agent; invalid JSON is the agent's failure (AssertionError), not the task's."""
    text = sandbox.read_file(path)
    try:
        return json.loads(text)
    except ValueError as exc:
        raise AssertionError(f"{path} is not valid JSON ({exc}): {text[:80]!r}") from None
