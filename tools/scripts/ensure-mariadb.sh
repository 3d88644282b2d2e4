#!/usr/bin/env bash
# Makes sure a MariaDB server answers on 127.0.0.1:3306 for the test suite, with
# the test user that pkg/mariadbtest logs in as (syncline_test, password
# syncline_test, who may create and drop the databases syncline_test_*): uses
# the one running, starts the machine's own if it is installed but stopped,
# installs Debian's if there is none (when run as root with apt), creates the
# user if it is missing, and otherwise fails saying what to do. Set
# SYNCLINE_TEST_MARIADB_URL to use another server; then this script only checks
# that it answers.
set -euo pipefail

user=syncline_test
password=syncline_test

say() { echo "ensure-mariadb: $*" >&2; }

if [[ -n ${SYNCLINE_TEST_MARIADB_URL:-} ]]; then
  # mariadb://user:password@host:port/
  if [[ ! $SYNCLINE_TEST_MARIADB_URL =~ ^(mariadb|mysql)://([^:@/]*)(:([^@/]*))?@([^:/]+)(:([0-9]+))?/?$ ]]; then
    say "SYNCLINE_TEST_MARIADB_URL is not a URL such as mariadb://user:password@127.0.0.1:3306/"
    exit 1
  fi
  user=${BASH_REMATCH[2]} password=${BASH_REMATCH[4]} host=${BASH_REMATCH[5]} port=${BASH_REMATCH[7]:-3306}
  if ! command -v mariadb >/dev/null 2>&1; then
    say "no mariadb client to check SYNCLINE_TEST_MARIADB_URL with; the tests will say whether it answers"
    exit 0
  fi
  if MYSQL_PWD=$password mariadb -h "$host" -P "$port" -u "$user" -e 'select 1' >/dev/null 2>&1; then
    exit 0
  fi
  say "no answer from SYNCLINE_TEST_MARIADB_URL ($host:$port as $user): start that server or unset the variable"
  exit 1
fi

answers() { MYSQL_PWD=$password mariadb --protocol=tcp -h 127.0.0.1 -P 3306 -u "$user" -e 'select 1' >/dev/null 2>&1; }
# root over the server's socket: Debian's root logs in by unix_socket as the OS root.
as_root() { mariadb --protocol=socket -u root "$@"; }
running() { mariadb-admin --protocol=socket -u root ping >/dev/null 2>&1 || mariadb-admin --protocol=tcp -h 127.0.0.1 -P 3306 -u root ping >/dev/null 2>&1; }

if command -v mariadb >/dev/null 2>&1 && answers; then
  exit 0
fi

if ! command -v mariadbd >/dev/null 2>&1 && [[ ! -x /usr/sbin/mariadbd ]]; then
  if [[ $(id -u) == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    say "installing the MariaDB server from Debian's packages"
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mariadb-server >/dev/null
  else
    say "MariaDB is not installed: install it (apt-get install mariadb-server) or set SYNCLINE_TEST_MARIADB_URL"
    exit 1
  fi
fi

if ! running; then
  if [[ $(id -u) != 0 ]]; then
    say "MariaDB is installed but not running, and only root can start it here: run this as root, or start it yourself"
    exit 1
  fi
  say "starting MariaDB"
  install -d -o mysql -g mysql /run/mysqld
  if [[ ! -d /var/lib/mysql/mysql ]]; then
    say "creating the MariaDB system tables in /var/lib/mysql"
    mariadb-install-db --user=mysql --datadir=/var/lib/mysql >/dev/null
  fi
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  for _ in $(seq 1 60); do
    running && break
    sleep 0.5
  done
  if ! running; then
    say "MariaDB did not start: see its log (/var/log/mysql/error.log, or the journal)"
    exit 1
  fi
fi

say "creating the test user $user (databases ${user}_*)"
if ! as_root <<SQL
CREATE USER IF NOT EXISTS '$user'@'127.0.0.1' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS '$user'@'localhost' IDENTIFIED BY '$password';
ALTER USER '$user'@'127.0.0.1' IDENTIFIED BY '$password';
ALTER USER '$user'@'localhost' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON \`syncline\\_test\\_%\`.* TO '$user'@'127.0.0.1';
GRANT ALL PRIVILEGES ON \`syncline\\_test\\_%\`.* TO '$user'@'localhost';
SQL
then
  say "could not log in as MariaDB's root over its socket to create $user: run this as root, or create the user yourself (see this script)"
  exit 1
fi

for _ in $(seq 1 20); do
  answers && exit 0
  sleep 0.5
done
say "MariaDB does not accept $user from 127.0.0.1:3306: check that it listens there (bind-address, port, skip-networking in /etc/mysql), or set SYNCLINE_TEST_MARIADB_URL"
exit 1
