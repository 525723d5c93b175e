#!/usr/bin/env bash
# Install and start everything the project's tests need, on a fresh Debian machine as root:
#
#   bash scripts/setup-tests.sh && python -m pytest tests -n 2 --dist worksteal -p no:cacheprovider -q -ra
#
# 1. the package with its test extra (the real OpenAI client the provider tests drive);
# 2. bubblewrap (provider models' commands run isolated on the local backend);
# 3. user-mode-linux (tests/test_cgroup_v2_guest.py boots a cgroup v2 guest on a v1 host; scripts/install-uml.sh);
# 4. a Docker engine and the offline base image (.ci/docker-setup.sh);
# 5. the checkout's bytecode (compileall), as an installed package has it.
# Idempotent: each step is skipped when already done. Exits non-zero with a one-line reason.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

say() { echo "setup-tests: $*" >&2; }
die() { say "$*"; exit 1; }

say "python packages (.[test])"
python3 -m pip install --quiet --disable-pip-version-check -e '.[test]' 2>&1 \
    | grep -v -e "Running pip as the 'root' user" -e "^WARNING: Location" || true
python3 -c "import pytest_harnessbench.plugin, langchain, langgraph, langsmith, docker, scipy, xdist, langchain_openai" \
    || die "python dependencies did not install"

if ! command -v bwrap >/dev/null; then
    [ "$(id -u)" = 0 ] || die "bubblewrap is missing: install it (apt-get install bubblewrap) or run this as root"
    say "installing bubblewrap"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq bubblewrap >/dev/null; } || die "apt-get install bubblewrap failed"
fi

[ "$(id -u)" = 0 ] || command -v linux.uml >/dev/null \
    || die "user-mode-linux is missing: install it (apt-get install user-mode-linux) or run this as root"
[ "$(id -u)" != 0 ] || bash scripts/install-uml.sh  # Debian's, or one that boots on this host kernel

bash .ci/docker-setup.sh

# --- HTML report (issue 13): Debian's chromium, driven by Playwright (from the test extra above) in
# tests/test_html_report.py. Playwright's own browser download is not used: the test points it at this binary.
if ! command -v chromium >/dev/null; then
    [ "$(id -u)" = 0 ] || die "chromium is missing: install it (apt-get install chromium) or run this as root"
    say "installing chromium"
    export DEBIAN_FRONTEND=noninteractive
    { apt-get update -qq && apt-get install -y -qq chromium >/dev/null; } || die "apt-get install chromium failed"
fi
python3 -c "import playwright.sync_api, bokeh" || die "playwright or bokeh did not install"

# --- Kubernetes backend (issue 16): the official client comes with the package's dependencies (step 1).
# No cluster is installed (none can be, offline): tests/test_k8s_backend.py runs against its stand-in API
# server (whose exec runs commands under bubblewrap, installed above), and its real-cluster tests run only
# when KUBECONFIG points at a cluster (marked may_skip).
python3 -c "import kubernetes.client, kubernetes.stream, websocket" || die "the kubernetes client did not install"

# --- Bytecode of this checkout, as an installed package has it: the suite starts a few hundred Python
# processes (and the cgroup v2 guests, whose system calls are slow) that would otherwise each compile the
# modules they import, where PYTHONDONTWRITEBYTECODE keeps them from saving it.
python3 -m compileall -q pytest_harnessbench tests >/dev/null || die "compiling this checkout's bytecode failed"
