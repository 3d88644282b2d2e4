#!/usr/bin/env bash
# Makes sure the Tryton 6.0 server and the modules the tryton connector's tests
# seed are installed (Debian's packages): does nothing when they are, installs
# the missing ones when run as root with apt, and otherwise fails saying what to
# do. The tests themselves create, seed and start their servers
# (connectors/tryton/trytontest).
set -euo pipefail

packages=(tryton-server tryton-proteus tryton-modules-party-relationship tryton-modules-product-attribute
  tryton-modules-stock tryton-modules-sale tryton-modules-account-invoice)

say() { echo "ensure-tryton: $*" >&2; }

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
    missing+=("$p")
  fi
done
[[ ${#missing[@]} == 0 ]] && exit 0

if [[ $(id -u) != 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  say "missing Debian packages: ${missing[*]}: install them (apt-get install ${missing[*]})"
  exit 1
fi
say "installing ${missing[*]} from Debian's packages"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >"$log" 2>&1; then
  cat "$log" >&2
  say "installing failed (the output above says why)"
  exit 1
fi
