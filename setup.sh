#!/usr/bin/env bash
# Install everything tritonzoo needs, on Debian or Ubuntu: the Debian packages (a real Prometheus with promtool,
# wrk, a C compiler for the build's peak test, iproute2 for the multi-host test's namespaces), then the Python
# package with all its extras. Safe to run twice: what is installed already is left alone. Elsewhere it names what is missing and how to get it.
set -euo pipefail
cd "$(dirname "$0")"

packages=(prometheus wrk gcc libc6-dev iproute2 python3-venv)
tools=(prometheus promtool wrk cc ip)

if command -v dpkg-query >/dev/null && command -v apt-get >/dev/null; then
    missing=()
    for pkg in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
    done
    if [ "${#missing[@]}" -gt 0 ]; then
        sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
        echo "setup: installing Debian packages: ${missing[*]}${sudo:+ (with sudo)}"
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
    else
        echo "setup: Debian packages present: ${packages[*]}"
    fi
else
    absent=()
    for tool in "${tools[@]}"; do command -v "$tool" >/dev/null || absent+=("$tool"); done
    if [ "${#absent[@]}" -gt 0 ]; then
        echo "setup: no apt-get here, and ${absent[*]} not found: install Prometheus 2.x (prometheus and promtool," \
             "from prometheus.io/download), wrk (github.com/wg/wrk) and a C compiler, then run setup.sh again" >&2
        exit 1
    fi
fi

# Python: the active virtual environment, else python3 itself, unless python3 is externally managed (PEP 668: the
# system Python of Debian 12 and Ubuntu 24.04), where pip refuses to install: then a virtual environment, .venv.
py=python3
activate=""
if [ -z "${VIRTUAL_ENV:-}" ] && { [ -x .venv/bin/python ] || "$py" -c 'import os, sys, sysconfig
sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; }; then
    [ -x .venv/bin/python ] || { echo "setup: $py is externally managed: creating a virtual environment, .venv"
                                 "$py" -m venv .venv; }
    py=.venv/bin/python
    activate=" (first: source .venv/bin/activate)"
fi
"$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
    echo "setup: tritonzoo needs Python 3.11 or newer; $py is $("$py" -V 2>&1)" >&2; exit 1; }

echo "setup: installing tritonzoo with its extras into $("$py" -c 'import sys; print(sys.prefix)') (pip install -e \".[all,dev]\")"
"$py" -m pip install --quiet -e ".[all,dev]"
echo "setup: done; next$activate: invoke zoo --data ../shared/data/cifar10-jpeg.tar.gz (or any CIFAR-10 source)"
