#!/usr/bin/env python3
"""Prepare Harbor / Terminal-Bench task directories to run without network, under Harbor and the plugin alike.

    python scripts/harbor_offline.py SOURCE DEST [--base harnessbench/python:3.11] [--image TAG]

Their verifiers (``tests/test.sh``) run ``apt-get install curl``, pipe the
``uv`` installer from astral.sh into ``sh``, ``source $HOME/.local/bin/env``,
then ``uvx --with pytest==8.4.1 --with pytest-json-ctrf==0.3.5 pytest ...``.
This builds once an image (``--image``, default
``harnessbench/harbor-offline:uv-0.9.7``) on top of ``--base`` that already holds
what they would download: ``uv``/``uvx`` in ``/usr/local/bin``, the pinned wheels in
``/opt/offline-wheels`` (``UV_OFFLINE=1``, ``UV_FIND_LINKS``), shims that make
``apt-get`` and ``curl`` exit 0 without doing anything, and an empty
``$HOME/.local/bin/env``. Then it copies every task directory of SOURCE (or
SOURCE itself, one task) to DEST with each ``FROM`` of
``environment/Dockerfile`` pointing at that image; ``tests/`` and
``solution/`` are not touched.

Limits, stated: a ``RUN apt-get install`` of a package the base lacks now
"succeeds" without it (put such packages in the base); ``uvx -p 3.13`` needs a
Python 3.13 in the base (the default base has Debian's 3.11; uv downloads none,
``UV_PYTHON_DOWNLOADS=never``); a multi-stage ``FROM stage`` is repointed too. The wheels come from PyPI once, through pip,
into ``~/.cache/harnessbench/harbor/offline-wheels``; nothing else needs network.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

UV_VERSION = "0.9.7"
VERIFIER_WHEELS = ("pytest==8.4.1", "pytest-json-ctrf==0.3.5")
WHEEL_CACHE = Path.home() / ".cache" / "harnessbench" / "harbor" / "offline-wheels"
DEFAULT_BASE = "harnessbench/python:3.11"
DEFAULT_IMAGE = f"harnessbench/harbor-offline:uv-{UV_VERSION}"

DOCKERFILE = """\
FROM {base}
COPY uv uvx /usr/local/bin/
COPY wheels/ /opt/offline-wheels/
RUN chmod 755 /usr/local/bin/uv /usr/local/bin/uvx \\
 && printf '#!/bin/sh\\n# harbor_offline.py: packages come with the image, nothing is installed\\nexit 0\\n' \\
      > /usr/local/bin/apt-get \\
 && printf '#!/bin/sh\\n# harbor_offline.py: no network; uv is installed already\\nexit 0\\n' > /usr/local/bin/curl \\
 && chmod 755 /usr/local/bin/apt-get /usr/local/bin/curl \\
 && mkdir -p /root/.local/bin && : > /root/.local/bin/env
ENV UV_OFFLINE=1 UV_FIND_LINKS=/opt/offline-wheels UV_PYTHON_DOWNLOADS=never
"""

_FROM = re.compile(r"^(\s*FROM\s+)(?:--platform=\S+\s+)?(\S+)", re.IGNORECASE | re.MULTILINE)


def point_from_lines_at(dockerfile: str, image: str) -> str:
    """Every ``FROM IMAGE`` of a Dockerfile made ``FROM image`` (a stage name after ``AS`` is kept)."""
    return _FROM.sub(lambda m: m.group(1) + image, dockerfile)


def wheels() -> Path:
    """The uv wheel and the verifier's pinned wheels, downloaded once with pip."""
    wanted = [f"uv=={UV_VERSION}", *VERIFIER_WHEELS]
    have = {p.name.split("-")[0].replace("_", "-").lower() for p in WHEEL_CACHE.glob("*.whl")}
    if not {w.split("==")[0] for w in wanted} <= have:
        WHEEL_CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                        "--only-binary=:all:", "-d", str(WHEEL_CACHE), *wanted], check=True)
    return WHEEL_CACHE


def build_image(base: str, image: str) -> None:
    """The offline verifier image, built once (kept as long as its tag exists)."""
    if subprocess.run(["docker", "image", "inspect", image], capture_output=True).returncode == 0:
        return
    source = wheels()
    with tempfile.TemporaryDirectory() as context:
        context_dir = Path(context)
        (context_dir / "wheels").mkdir()
        for wheel in source.glob("*.whl"):
            if wheel.name.startswith("uv-"):
                with zipfile.ZipFile(wheel) as archive:
                    for name in archive.namelist():
                        if name.endswith(("/scripts/uv", "/scripts/uvx")):
                            (context_dir / name.rsplit("/", 1)[1]).write_bytes(archive.read(name))
            else:
                shutil.copy(wheel, context_dir / "wheels")
        (context_dir / "Dockerfile").write_text(DOCKERFILE.format(base=base))
        subprocess.run(["docker", "build", "-q", "-t", image, str(context_dir)], check=True, stdout=subprocess.DEVNULL)
    print(f"harbor-offline: built {image} on {base}", file=sys.stderr)


def prepare(source: Path, destination: Path, image: str) -> list[Path]:
    """Copies of the task directories under ``destination``, their Dockerfiles built ``FROM image``."""
    tasks = [source] if (source / "task.toml").is_file() else sorted(p.parent for p in source.glob("*/task.toml"))
    if not tasks:
        sys.exit(f"harbor-offline: {source}: no task directory (one holding task.toml) in it")
    prepared = []
    for task in tasks:
        copy = destination / task.name
        if copy.exists():
            sys.exit(f"harbor-offline: {copy} exists already: remove it or choose another DEST")
        shutil.copytree(task, copy)
        dockerfile = copy / "environment" / "Dockerfile"
        if dockerfile.is_file():
            dockerfile.write_text(point_from_lines_at(dockerfile.read_text(), image))
        prepared.append(copy)
    return prepared


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", type=Path)
    parser.add_argument("destination", type=Path)
    parser.add_argument("--base", default=DEFAULT_BASE, help=f"image to build on (default {DEFAULT_BASE})")
    parser.add_argument("--image", default=DEFAULT_IMAGE, help=f"tag of the offline image (default {DEFAULT_IMAGE})")
    args = parser.parse_args()
    build_image(args.base, args.image)
    for task in prepare(args.source.resolve(), args.destination.resolve(), args.image):
        print(task)
    return 0


if __name__ == "__main__":
    sys.exit(main())
