#!/usr/bin/env bash
# Makes sure a headless-capable Chromium is installed for the browser tests
# (pkg/browsertest): uses $SYNCLINE_TEST_CHROMIUM or Debian's chromium if
# installed, installs Debian's when run as root with apt, and otherwise fails
# saying what to do.
set -euo pipefail

say() { echo "ensure-chromium: $*" >&2; }

if [[ -n ${SYNCLINE_TEST_CHROMIUM:-} ]]; then
  if [[ -x $SYNCLINE_TEST_CHROMIUM ]] || command -v "$SYNCLINE_TEST_CHROMIUM" >/dev/null 2>&1; then
    exit 0
  fi
  say "SYNCLINE_TEST_CHROMIUM is $SYNCLINE_TEST_CHROMIUM, which is not an executable: point it at a Chromium binary or unset it"
  exit 1
fi

if command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1; then
  exit 0
fi

if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
  say "installing Chromium from Debian's packages"
  apt-get update -qq >/dev/null
  # fonts-liberation gives pages a metric-compatible sans-serif, so screenshots look alike
  # on every machine.
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    chromium fonts-liberation >/dev/null
  if command -v chromium >/dev/null 2>&1; then
    exit 0
  fi
  say "apt-get installed the chromium package but no chromium command is on PATH"
  exit 1
fi

say "Chromium is not installed: install it (apt-get install chromium) or set SYNCLINE_TEST_CHROMIUM to a Chromium binary"
exit 1
