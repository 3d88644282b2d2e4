#!/usr/bin/env bash
# Makes sure node and npm are installed, for the servers the tests run against (tools/peers):
# installs Debian's when run as root with apt, and otherwise fails saying what to do.
set -euo pipefail

say() { echo "ensure-node: $*" >&2; }

if command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1; then
  exit 0
fi
if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  say "installing Node.js and npm from Debian's packages"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  exit 0
fi
say "node and npm are not installed: install them (apt-get install nodejs npm)"
exit 1
