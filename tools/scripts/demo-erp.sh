#!/usr/bin/env bash
# make demo-erp: a webshop (json-server with examples/erp/shop.json) and an ERP
# (Tryton 6.0 with a seeded database) connected by Syncline's all-in-one mode.
# It installs what is missing, starts the three on free ports of 127.0.0.1,
# applies examples/erp/shop-to-erp.yaml and orders.yaml a flow (or two) at a time,
# each stage once the API log has the outcomes of the one before (the flows poll
# the shop's API themselves: no publishing code), prints what Tryton holds
# and what to look at, and keeps everything running until Ctrl-C, which
# stops all it started. Everything lives in .demo-erp/, made afresh each run.
#
#   tools/scripts/demo-erp.sh            run the demo (make demo-erp)
#   tools/scripts/demo-erp.sh stop-erp   stop the running demo's Tryton (a target that is down)
#   tools/scripts/demo-erp.sh start-erp  start it again
#   tools/scripts/demo-erp.sh counts     print what Tryton holds
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
demo=$root/.demo-erp
# Debian's python3, which Tryton's packages bring; a python3 earlier on PATH
# (a version manager's) may lack what trytond needs.
python=/usr/bin/python3
tenant=acme

if [[ -t 1 ]]; then bold=$'\033[1m' red=$'\033[31m' plain=$'\033[0m'; else bold='' red='' plain=''; fi
say() { printf '%s==> %s%s\n' "$bold" "$*" "$plain"; }
warn() { printf '%sdemo-erp: %s%s\n' "$red" "$*" "$plain" >&2; }
fail() { warn "$*"; exit 1; }

# free_port prints a port of 127.0.0.1 that nothing listens on now; the
# caller starts its server on it and tries another if it was taken meanwhile.
free_port() {
  "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# listening PORT says whether something accepts connections on 127.0.0.1:PORT.
listening() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The processes the demo starts are recorded in .demo-erp/run/NAME.pid, so
# that whatever ends the demo — its Ctrl-C, stop-erp in another terminal, or
# the next run after one that was killed — stops them by their ids.
run=$demo/run

# ours PID says whether PID is one of the demo's processes: alive, and with the
# demo's folder on its command line (an id the system gave to another since is not).
ours() { [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF "$demo/"; }

# stop NAME SIGNAL stops the demo's process NAME: the signal, then up to 30 s
# for it to end, then SIGKILL.
stop() {
  local file=$run/$1.pid pid
  [[ -f $file ]] || return 0
  pid=$(<"$file")
  rm -f "$file"
  ours "$pid" || return 0
  echo "stopping $1 (pid $pid)"
  kill -s "$2" "$pid" 2>/dev/null || return 0
  for _ in $(seq 150); do
    ours "$pid" || return 0
    sleep 0.2
  done
  warn "$1 (pid $pid) did not stop within 30 s: killing it"
  kill -s KILL "$pid" 2>/dev/null || true
}

alive() { [[ -f $run/$1.pid ]] && ours "$(<"$run/$1.pid")"; }

# --- Tryton: started by the demo, and by stop-erp/start-erp in another terminal.

tryton_dir=$demo/tryton
tryton_url() { sed -n 's/^listen = /http:\/\//p' "$tryton_dir/trytond.conf"; }

# start_tryton starts trytond on the port of trytond.conf and waits until it
# answers a login to the database erp; it fails when trytond exits (its port
# was taken, say).
start_tryton() {
  local url
  alive tryton && fail "Tryton is running already (pid $(<"$run/tryton.pid"))"
  url=$(tryton_url)
  trytond -c "$tryton_dir/trytond.conf" >>"$tryton_dir/trytond.log" 2>&1 &
  echo $! >"$run/tryton.pid"
  for _ in $(seq 300); do
    alive tryton || return 1
    if "$python" "$root/tools/scripts/tryton-counts.py" "$url" erp admin admin >/dev/null 2>&1; then
      return 0
    fi
    sleep 0.2
  done
  fail "Tryton did not answer at $url within 60 s; its log: $tryton_dir/trytond.log"
}

running_demo() {
  [[ -f $run/demo.pid ]] && kill -0 "$(<"$run/demo.pid")" 2>/dev/null
}

case ${1:-run} in
run) ;;
stop-erp)
  running_demo || fail "no demo is running (make demo-erp starts one)"
  alive tryton || fail "Tryton is not running (tools/scripts/demo-erp.sh start-erp starts it)"
  stop tryton TERM
  echo "Tryton is stopped: the flows into it pause at their next push, and their events wait"
  exit 0
  ;;
start-erp)
  running_demo || fail "no demo is running (make demo-erp starts one)"
  start_tryton || fail "Tryton did not start; its log: $tryton_dir/trytond.log"
  echo "Tryton answers again at $(tryton_url): the paused flows resume within a minute"
  exit 0
  ;;
counts)
  running_demo || fail "no demo is running (make demo-erp starts one)"
  exec "$python" "$root/tools/scripts/tryton-counts.py" "$(tryton_url)" erp admin admin
  ;;
*)
  fail "unknown command $1: use run (the default), stop-erp, start-erp or counts"
  ;;
esac

# --- The demo.

cd "$root"
if running_demo; then
  fail "a demo is running already (pid $(<"$run/demo.pid")): stop it with Ctrl-C in its terminal first"
fi
command -v go >/dev/null 2>&1 || fail "go is not installed: the demo needs Go 1.26 (https://go.dev/dl/)"

cleanup() {
  local code=$?
  trap - EXIT INT TERM HUP
  echo
  say "Stopping everything the demo started"
  stop syncline TERM
  stop shop TERM
  stop tryton TERM
  rm -f "$run/demo.pid"
  echo "stopped; what the demo wrote stays in .demo-erp/ until the next run"
  exit "$code"
}
# What a run that was killed left running goes first, then its folder.
if [[ -d $run ]]; then
  for name in syncline shop tryton; do stop "$name" TERM; done
fi
rm -rf "$demo"
mkdir -p "$run" "$demo/bin" "$demo/shop" "$tryton_dir" "$demo/syncline" "$demo/resources"
trap cleanup EXIT
trap 'exit 130' INT TERM HUP
echo $$ >"$run/demo.pid"

say "Installing what is missing: json-server 0.17.4 (npm) and Tryton 6.0 (Debian's packages)"
make -s --no-print-directory -C "$root" peers tryton

say "Building syncline and trytonseed into .demo-erp/bin"
go build -o "$demo/bin/" ./tools/syncline ./tools/trytonseed
export PATH=$demo/bin:$PATH

say "Starting the webshop: json-server with examples/erp/shop.json"
cp examples/erp/shop.json "$demo/shop/db.json"
for _ in 1 2 3; do
  shop_port=$(free_port)
  node tools/peers/node_modules/json-server/lib/cli/bin.js --host 127.0.0.1 --port "$shop_port" --quiet \
    "$demo/shop/db.json" >"$demo/shop/json-server.log" 2>&1 &
  echo $! >"$run/shop.pid"
  for _ in $(seq 150); do
    listening "$shop_port" || ! alive shop && break
    sleep 0.2
  done
  listening "$shop_port" && break
  stop shop TERM
done
alive shop || fail "json-server did not start; its log: $demo/shop/json-server.log"
shop_url=http://127.0.0.1:$shop_port
echo "the webshop's API: $shop_url (/categories, /products, /stock, /customers, /orders)"

say "Starting the ERP: Tryton 6.0 with a seeded database (the first time builds it: about half a minute)"
trytonseed -o "$tryton_dir/erp.sqlite"
started=''
for _ in 1 2 3; do
  printf '[database]\nuri = sqlite://\npath = %s\n[web]\nlisten = 127.0.0.1:%s\n' "$tryton_dir" "$(free_port)" >"$tryton_dir/trytond.conf"
  if start_tryton; then
    started=1
    break
  fi
done
[[ -n $started ]] || fail "Tryton did not start; its log: $tryton_dir/trytond.log"
erp_url=$(tryton_url)
echo "Tryton: $erp_url, database erp, login admin / admin"

say "Starting Syncline (syncline dev) in .demo-erp/syncline"
syncline dev --data-dir "$demo/syncline" --http-addr 127.0.0.1:0 --nats-port -1 \
  --egress-allow "${erp_url#http://},127.0.0.1:$shop_port" >"$demo/syncline.log" 2>&1 &
echo $! >"$run/syncline.pid"
for _ in $(seq 300); do
  [[ -f $demo/syncline/addresses.json ]] && break
  alive syncline || fail "syncline dev exited; its log: $demo/syncline.log"
  sleep 0.2
done
[[ -f $demo/syncline/addresses.json ]] || fail "syncline dev did not start within 60 s; its log: $demo/syncline.log"
api_url=$(sed -n 's/.*"api": *"\([^"]*\)".*/\1/p' "$demo/syncline/addresses.json")
nats_url=$(sed -n 's/.*"nats": *"\([^"]*\)".*/\1/p' "$demo/syncline/addresses.json")
export SYNCLINE_DATA_DIR=$demo/syncline
echo "API $api_url, NATS $nats_url"

say "Applying the resources, a stage at a time (each flow polls the shop at once, then every 5 s)"
echo "A stock level needs its product in Tryton, and an order its customer and products:"
echo "each stage is applied once the API log has the outcomes of the one before."
# The resources, with the addresses of the shop and Tryton written in.
sed -e "s|^\( *url: \)http://127.0.0.1:8000|\1$erp_url|" -e "s|^\( *base_url: \)http://127.0.0.1:3000|\1$shop_url|" \
  examples/erp/shop-to-erp.yaml >"$demo/resources/shop-to-erp.yaml"
grep -q "url: $erp_url" "$demo/resources/shop-to-erp.yaml" || fail "examples/erp/shop-to-erp.yaml has no url: http://127.0.0.1:8000 to replace"
grep -q "base_url: $shop_url" "$demo/resources/shop-to-erp.yaml" || fail "examples/erp/shop-to-erp.yaml has no base_url: http://127.0.0.1:3000 to replace"

# pick FILE NAME... prints the documents of the resource file FILE that are
# flows named NAME, and with "-" every document that is not a flow (the
# tenant, the integrator, the endpoints).
pick() {
  local file=$1
  shift
  awk -v names=" $* " '
    function flush() {
      if (doc != "" && ((kind != "Flow" && index(names, " - ")) || (kind == "Flow" && index(names, " " name " "))))
        printf "---\n%s", doc
      doc = ""; kind = ""; name = ""
    }
    /^---/ { flush(); next }
    /^kind: / { kind = $2 }
    /^  name: / && name == "" { name = $2 }
    { doc = doc $0 "\n" }
    END { flush() }
  ' "$file"
}
pick "$demo/resources/shop-to-erp.yaml" - categories >"$demo/resources/stage-1.yaml"
pick "$demo/resources/shop-to-erp.yaml" products >"$demo/resources/stage-2.yaml"
pick "$demo/resources/shop-to-erp.yaml" stock customers >"$demo/resources/stage-3.yaml"
cp examples/erp/orders.yaml "$demo/resources/stage-4.yaml"
for n in 1 2 3; do
  grep -q '^kind: Flow' "$demo/resources/stage-$n.yaml" ||
    fail "examples/erp/shop-to-erp.yaml lacks a flow of stage $n (1 categories; 2 products; 3 stock, customers)"
done

# apply N applies stage N and prints what it did, a line a resource.
apply() {
  syncline apply -f "$demo/resources/stage-$1.yaml" >"$demo/apply-$1.log" ||
    fail "syncline apply -f .demo-erp/resources/stage-$1.yaml failed; see $demo/apply-$1.log"
  grep -v '^ ' "$demo/apply-$1.log"
}

# outcomes FLOW COLLECTION waits up to 3 minutes until the API log has an
# outcome in flow FLOW for every record of the shop's COLLECTION, and prints
# how many of each action, and every failure with its reason. It returns 1
# when a record failed or an outcome did not come.
outcomes() {
  local flow=$1 collection=$2 deadline=$((SECONDS + 180)) state code
  while :; do
    syncline logs --tenant "$tenant" --flow "$flow" --limit 1000 -o json >"$demo/outcomes-$flow.json" 2>/dev/null || true
    code=0
    state=$("$python" - "$shop_url/$collection" "$demo/outcomes-$flow.json" "$flow" "$collection" <<'EOF'
import collections, json, sys, urllib.request
url, path, flow, collection = sys.argv[1:5]
with urllib.request.urlopen(url, timeout=30) as answer:
    keys = {str(record['id']) for record in json.load(answer)}
try:
    with open(path) as f:
        records = json.load(f).get('records', [])
except ValueError:
    records = []
latest = {}
for r in records:  # newest first: each record's latest outcome
    latest.setdefault(r.get('remoteId', ''), r)
done = [latest[k] for k in sorted(keys, key=int) if k in latest]
actions = collections.Counter(r.get('action', '') for r in done)
print('done' if len(done) == len(keys) else 'waiting')
print('%s: %d in the shop, %s' % (flow, len(keys), ', '.join(
    '%d %s' % (n, action) for action, n in sorted(actions.items())) or 'no outcome yet'))
failed = [r for r in done if r.get('status') == 'failure']
for r in failed:
    print('  %s %s failed: %s (%s)' % (collection, r.get('remoteId'), r.get('reason', ''), r.get('code', '')))
sys.exit(1 if failed else 0)
EOF
    ) || code=$?
    if [[ $code != 0 || ${state%%$'\n'*} == done ]]; then
      sed 1d <<<"$state"
      return "$code"
    fi
    if ((SECONDS > deadline)); then
      sed 1d <<<"$state"
      warn "not every record of $collection has an outcome in flow $flow after 3 minutes: syncline get flows says why"
      return 1
    fi
    sleep 0.5
  done
}

export SYNCLINE_SERVER=$api_url SYNCLINE_NATS_URL=$nats_url
apply 1
token=$(sed -n 's/^ *token: \([^ ]*\).*/\1/p' "$demo/apply-1.log")
[[ -n $token ]] || fail "the apply printed no integrator token; see $demo/apply-1.log"
cat >"$demo/env" <<EOF
# source .demo-erp/env: the demo's commands and addresses, and the integrator's
# token, which sees and changes the tenant $tenant only.
export PATH="$demo/bin:\$PATH"
export SYNCLINE_DATA_DIR="$demo/syncline"
export SYNCLINE_SERVER="$api_url"
export SYNCLINE_NATS_URL="$nats_url"
export SYNCLINE_TOKEN="$token"
export SHOP_URL="$shop_url"
export TRYTON_URL="$erp_url"
EOF
chmod 600 "$demo/env"

arrived=1
outcomes categories categories || arrived=''
apply 2
outcomes products products || arrived=''
apply 3
outcomes stock stock || arrived=''
outcomes customers customers || arrived=''
apply 4
outcomes orders orders || arrived=''
# From here on, the integrator's token, as .demo-erp/env has it.
export SYNCLINE_TOKEN=$token

say "The flows: when each last polled the shop, and its cursor (the time and keys of the last records read)"
syncline get flows

say "What Tryton holds now (read over its JSON-RPC)"
"$python" tools/scripts/tryton-counts.py "$erp_url" erp admin admin

trace=$(syncline logs --tenant "$tenant" --flow products --remote-id 11 -o json |
  sed -n 's/.*"traceId": *"\([^"]*\)".*/\1/p' | head -n1)

cat <<EOF

${bold}The demo is running.${plain} In another terminal, in this folder:

  source .demo-erp/env                  # PATH, the addresses, the integrator's token
  syncline get flows                    # the five flows: state, LAST POLL, CURSOR
  syncline flow sync stock              # poll the shop's stock levels now, not in 5 s
  syncline get integrator shop-to-erp   # its services (orders, customers, products...) and their flows
  syncline logs                         # the API log: each record's outcome, target id, trace id
  syncline logs --remote-id 11 -o json  # product 11 (TS-100), with its id in Tryton
  syncline report                       # per flow: records by action, failures, latency
  curl \$SHOP_URL/products/11            # the webshop's record
  tools/scripts/demo-erp.sh counts      # what Tryton holds, read again

A trace: product 11's journey is trace ${trace:-(none found)}, one span per hop
(mapper, dedup, connector, eventlog). Start the demo with
OTEL_EXPORTER_OTLP_ENDPOINT set to an OTLP/HTTP collector (Jaeger's is
http://127.0.0.1:4318) and look it up there.

Add a record to the shop and it reaches Tryton by the next poll. Break it on
purpose (the README's "A webshop and an ERP" has more, and the outcomes):
  curl -X POST \$SHOP_URL/stock -H 'Content-Type: application/json' \\
    -d '{"id":998,"sku":"XX-998","available":5,"reserved":0,"updated_at":"'\$(date -u +%FT%TZ)'"}'
  syncline logs --remote-id 998         # failed: Tryton has no product XX-998
  tools/scripts/demo-erp.sh stop-erp    # the ERP goes away; then change a stock level in the shop
  tools/scripts/demo-erp.sh start-erp   # it comes back; the paused flow resumes

Logs: .demo-erp/syncline.log, .demo-erp/tryton/trytond.log, .demo-erp/shop/json-server.log
${bold}Ctrl-C stops everything the demo started.${plain}
EOF
[[ -n $arrived ]] || warn "not every record arrived (see above): syncline logs --status failure lists the failures"

wait "$(<"$run/syncline.pid")" || true
fail "syncline dev stopped by itself; its log: $demo/syncline.log"
