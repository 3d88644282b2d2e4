#!/usr/bin/env bash
# Makes sure a PostgreSQL server answers on 127.0.0.1:5432 for the test suite:
# uses the one running, starts the machine's own if it is installed but
# stopped, installs Debian's if there is none (when run as root with apt), and
# otherwise fails saying what to do. Set SYNCLINE_TEST_POSTGRES_URL to use
# another server; then this script only checks that it answers.
set -euo pipefail

url=${SYNCLINE_TEST_POSTGRES_URL:-postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable}

answers() { psql "$url" -Atqc 'select 1' >/dev/null 2>&1; }

say() { echo "ensure-postgres: $*" >&2; }

if ! command -v psql >/dev/null 2>&1 && [[ -z ${SYNCLINE_TEST_POSTGRES_URL:-} ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing PostgreSQL from Debian's packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    say "PostgreSQL is not installed: install it (apt-get install postgresql) or set SYNCLINE_TEST_POSTGRES_URL"
    exit 1
  fi
fi

answers && exit 0

if [[ -n ${SYNCLINE_TEST_POSTGRES_URL:-} ]]; then
  say "no answer from SYNCLINE_TEST_POSTGRES_URL ($url): start that server or unset the variable"
  exit 1
fi

if ! ls /etc/postgresql/*/main >/dev/null 2>&1; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing the PostgreSQL server from Debian's packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    say "no PostgreSQL cluster on this machine: install one (apt-get install postgresql) or set SYNCLINE_TEST_POSTGRES_URL"
    exit 1
  fi
fi

version=$(ls /etc/postgresql | sort -V | tail -n1)
if ! pg_lsclusters -h 2>/dev/null | awk -v v="$version" '$1 == v && $2 == "main" && $4 == "online"' | grep -q .; then
  say "starting PostgreSQL $version"
  pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
fi

for _ in $(seq 1 60); do
  answers && exit 0
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
    break
  fi
  sleep 0.5
done

if ! answers && pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  # The server runs but refuses the passwordless login the tests use, as a
  # fresh Debian install does: trust local TCP logins on this test machine.
  hba=/etc/postgresql/$version/main/pg_hba.conf
  if [[ -w $hba ]]; then
    say "allowing passwordless logins from 127.0.0.1 and ::1 in $hba (a test machine)"
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
    pg_ctlcluster --skip-systemctl-redirect "$version" main reload
    sleep 1
  fi
fi

if answers; then
  exit 0
fi
say "PostgreSQL does not accept 'psql $url': check the server log in /var/log/postgresql, or set SYNCLINE_TEST_POSTGRES_URL"
exit 1
