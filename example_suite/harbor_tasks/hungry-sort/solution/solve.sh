#!/bin/bash
# A memory-hungry reference solution: it keeps a 100 MiB scratch buffer while sorting in memory,
# well above the 64 MiB the task declares (the kernel kills it at 1x; 3x, 192 MiB, is enough).
python3 - <<'PY'
scratch = b"x" * (100 * 1024 * 1024)
numbers = sorted(int(line) for line in open("numbers.txt"))
open("sorted.txt", "w").writelines(f"{n}\n" for n in numbers)
PY
