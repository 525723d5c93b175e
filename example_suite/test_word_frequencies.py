"""Top-N word frequencies over a large text."""

import pytest

import _tasks as T

LEAN = r"""tr -cs 'A-Za-z' '\n' < corpus.txt | tr 'A-Z' 'a-z' \
  | awk 'NF { n[$1]++ } END { for (w in n) print n[w], w }' \
  | LC_ALL=C sort -k1,1nr -k2,2 | head -n 25 | awk '{ print $2, $1 }' > top_words.txt"""

HEAVY = T.python_script("""
import re
from collections import Counter
text = open("corpus.txt").read()
words = [w.lower() for w in re.findall(r"[A-Za-z]+", text)]
top = sorted(Counter(words).items(), key=lambda kv: (-kv[1], kv[0]))[:25]
open("top_words.txt", "w").write("".join(f"{w} {n}\\n" for w, n in top))
""")


@pytest.mark.task(cpus=1, memory="64Mi", timeout=60, image=T.IMAGE,
                  solutions={"lean": LEAN, "heavy": HEAVY})
def test_word_frequencies(trial):
    trial.sandbox.write_file("corpus.txt", T.words_corpus())  # ~6.4 MB, 900,000 tokens
    trial.run_agent(
        "Count how often each word occurs in corpus.txt. A word is a maximal run of ASCII letters "
        "(A-Z, a-z), compared case-insensitively and reported in lower case; digits and punctuation "
        "separate words. Write the 25 most frequent words to top_words.txt, one 'word count' line each, "
        "most frequent first, ties broken alphabetically.")
    got = [line.split() for line in trial.sandbox.read_file("top_words.txt").splitlines() if line.strip()]
    want = [[w, str(n)] for w, n in T.words_expected_top()]
    assert got == want, f"top_words.txt starts {got[:3]}, want {want[:3]}"
