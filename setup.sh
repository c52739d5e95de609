#!/usr/bin/env bash
# Install everything tritonzoo needs, on Debian or Ubuntu: the Debian packages (a real Prometheus with promtool,
# wrk, a C compiler for the build's peak test, iproute2 for the multi-host test's namespaces), then the Python
# package with all its extras. Safe to run twice: what is installed already is left alone. Elsewhere it names what is missing and how to get it.
set -euo pipefail
cd "$(dirname "$0")"

packages=(prometheus wrk gcc libc6-dev iproute2)
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

echo "setup: installing tritonzoo with its extras (pip install -e \".[all,dev]\")"
python3 -m pip install --quiet -e ".[all,dev]"
echo "setup: done; next: invoke zoo --data ../shared/data/cifar10-jpeg.tar.gz (or any CIFAR-10 source)"
