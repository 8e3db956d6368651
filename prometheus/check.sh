#!/usr/bin/env bash
# Checks the Prometheus assets: the config (and the rule files it loads), the rules, and the rule
# unit tests. Needs promtool (Debian package `prometheus`; scripts/setup.sh installs it).
#   prometheus/check.sh
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"

if ! command -v promtool >/dev/null 2>&1; then
  echo "check.sh: promtool not found; install Debian's prometheus package (apt-get install prometheus) or run scripts/setup.sh" >&2
  exit 1
fi

# rule_files in prometheus.yml are resolved relative to the config file, i.e. this directory.
promtool check config prometheus.yml
promtool check rules rules/*.yml
promtool test rules tests/*.test.yml
