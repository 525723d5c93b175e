"""Commands that drive a sandbox into a kernel limit, shared by the backend and plugin tests."""

# Holds 32 MiB and reads a 32 MiB file it wrote itself through mmap, over and over, for SECONDS: under a 64 MiB
# limit the file cannot stay cached, so every pass reads most of it back from disk -- and the kernel, which can
# always evict some of those pages again, never OOM-kills it (issue 21.7; README, "Memory pressure"). A
# negative SECONDS loops forever.
THRASH = """head -c 32M /dev/urandom > data.bin && python3 -c '
import mmap, sys, time
held = bytearray(32 << 20); held[::4096] = b"1" * len(held[::4096])
f = open("data.bin", "rb"); m = mmap.mmap(f.fileno(), 0, prot=mmap.PROT_READ)
start, seconds = time.monotonic(), float(sys.argv[1])
while seconds < 0 or time.monotonic() - start < seconds:
    sum(m[i] for i in range(0, len(m), 4096))
' SECONDS"""


def thrash(seconds: float) -> str:
    return THRASH.replace("SECONDS", str(seconds))
