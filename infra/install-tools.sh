#!/usr/bin/env bash
# Command-line tools the tests and README use besides Python: kcat (a plain Kafka client,
# to show and test that agents in any language need nothing of ours), jq, and Prometheus
# (its server scrapes the processors in the end-to-end test; promtool tests the alert rules),
# and headless Chromium with its WebDriver, in which the dashboard's browser test loads the pages.
# Installs the missing ones from Debian's packages when run as root; otherwise says how.
set -euo pipefail

missing=()
command -v kcat >/dev/null 2>&1 || missing+=(kcat)
command -v jq >/dev/null 2>&1 || missing+=(jq)
# Debian's package `prometheus` provides both the server and promtool.
{ command -v prometheus >/dev/null 2>&1 && command -v promtool >/dev/null 2>&1; } || missing+=(prometheus)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "install-tools: apt-get install ${missing[*]}"
    if ! DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null; then
        apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
else
    echo "install-tools: please install ${missing[*]} (Debian/Ubuntu: apt-get install ${missing[*]})" >&2
    exit 1
fi
