#!/usr/bin/env bash
# Benchmarks touchpoint cycles against the sandbox CRM and compares each with the minimal
# client (examples/minimal_client.rs) making the same HTTP requests and reading the same bytes.
#
#   bash bench/cycle.sh [ACCOUNTS ...]        (default: 25000 50000 100000)
#
# For every book size it starts a fresh sandbox (its own process, so its memory is not
# counted), then measures:
#   1. a first cycle on an empty store: every score is new, stored and written back;
#   2. the minimal client replaying that cycle's requests;
#   3. a second cycle on the same store and day: the steady state of a daemon, where most
#      scores are unchanged and only what changed is written;
#   4. the minimal client replaying the second cycle's requests.
# Each line gives wall time and peak memory (max RSS); the cycle's own step timings follow.
# Results go in docs/benchmarks.md with the machine and the date. Run it on a quiet machine:
# the sandbox, the client and touchpoint share its cores.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("$@")
[ $# -gt 0 ] || sizes=(25000 50000 100000)
as_of=2025-06-02
port=8790
work=$(mktemp -d)
trap 'kill "${sandbox:-0}" 2>/dev/null || true; rm -rf "$work"' EXIT

cargo build --release --quiet --bin touchpoint --example minimal_client
bin=target/release/touchpoint
client=target/release/examples/minimal_client
export TOUCHPOINT_SOURCE_TOKEN=sandbox-token
export TOUCHPOINT_LINK_SECRET=bench-link-secret-0123456789abcdef0123

writes_so_far() {
  curl -s "http://127.0.0.1:$port/_sandbox/writes" |
    python3 -c "import json,sys; print(len(json.load(sys.stdin)))"
}

# cycle NAME: one touchpoint cycle against the sandbox, timed.
cycle() {
  /usr/bin/time -f "%e %M" -o "$work/$1.time" env \
    TOUCHPOINT__SOURCE__BASE_URL="http://127.0.0.1:$port" \
    TOUCHPOINT__STORE__PATH="$work/bench.db" \
    TOUCHPOINT__MAIL__FILE_DIR="$work/outbox" \
    TOUCHPOINT__SOURCE__REQUESTS_PER_SECOND=100000 \
    TOUCHPOINT__LOG__LEVEL=info \
    "$bin" cycle --as-of "$as_of" --act-on-past --output json \
    >"$work/$1.json" 2>"$work/$1.log"
}

# client NAME FIRST_WRITE: the minimal client replaying the writes from FIRST_WRITE on.
client() {
  /usr/bin/time -f "%e %M" -o "$work/$1.time" \
    "$client" "http://127.0.0.1:$port" "$as_of" "$2" >"$work/$1.txt" 2>"$work/$1.lists"
}

report() {
  local name=$1 label=$2 versus=$3
  read -r cycle_s cycle_kb <"$work/$name.time"
  read -r client_s client_kb <"$work/$versus.time"
  local scored ratio
  scored=$(python3 -c "import json;print(json.load(open('$work/$name.json'))['scored'])")
  ratio=$(python3 -c "print(f'{$cycle_s/$client_s:.2f}')")
  printf '%7s accounts, %s: cycle %6.2f s, %4d MB peak (%s scored) | minimal client %6.2f s, %4d MB | ratio %s\n' \
    "$accounts" "$label" "$cycle_s" $((cycle_kb / 1024)) "$scored" "$client_s" \
    $((client_kb / 1024)) "$ratio"
  sed -n 's/.*INFO \(.*duration_ms=[0-9]*\).*/    \1/p' "$work/$name.log" | grep -v "read the"
  sed 's/^/    /' "$work/$versus.txt"
}

for accounts in "${sizes[@]}"; do
  "$bin" sandbox --accounts "$accounts" --seed 42 --anchor "$as_of" --port "$port" \
    2>"$work/sandbox.log" &
  sandbox=$!
  until curl -s -o /dev/null "http://127.0.0.1:$port/_sandbox/stats"; do sleep 0.5; done
  rm -rf "$work"/bench.db* "$work/outbox"

  cycle first
  client first-client 0
  from=$(writes_so_far)
  cycle second
  client second-client "$from"

  report first "first cycle " first-client
  report second "second cycle" second-client

  kill "$sandbox"
  wait "$sandbox" 2>/dev/null || true
done
