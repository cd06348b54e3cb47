#!/usr/bin/env bash
# Benchmarks one full touchpoint cycle against the sandbox CRM and compares it with the minimal
# client (examples/minimal_client.rs) making the same requests. Prints wall time and peak memory
# (max RSS) of each, for every book size given (default: 25000 50000 100000).
#
#   bash bench/cycle.sh [ACCOUNTS ...]
#
# The sandbox runs as its own process so its memory is not counted. Results go in
# docs/benchmarks.md with the machine and the date.
set -euo pipefail
cd "$(dirname "$0")/.."
sizes=("${@:-25000 50000 100000}")
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

for accounts in "${sizes[@]}"; do
  "$bin" sandbox --accounts "$accounts" --seed 42 --anchor "$as_of" --port "$port" \
    2>"$work/sandbox.log" &
  sandbox=$!
  until curl -s -o /dev/null "http://127.0.0.1:$port/_sandbox/stats"; do sleep 0.5; done

  rm -f "$work"/bench.db*
  /usr/bin/time -f "%e %M" -o "$work/cycle.time" env \
    TOUCHPOINT__SOURCE__BASE_URL="http://127.0.0.1:$port" \
    TOUCHPOINT__STORE__PATH="$work/bench.db" \
    TOUCHPOINT__MAIL__FILE_DIR="$work/outbox" \
    TOUCHPOINT__SOURCE__REQUESTS_PER_SECOND=1000 \
    TOUCHPOINT__LOG__LEVEL=warn \
    "$bin" cycle --as-of "$as_of" --act-on-past --output json >"$work/report.json"
  /usr/bin/time -f "%e %M" -o "$work/client.time" \
    "$client" "http://127.0.0.1:$port" "$as_of" >"$work/client.txt"

  read -r cycle_s cycle_kb <"$work/cycle.time"
  read -r client_s client_kb <"$work/client.time"
  scored=$(python3 -c "import json;print(json.load(open('$work/report.json'))['scored'])")
  ratio=$(python3 -c "print(f'{$cycle_s/$client_s:.2f}')")
  printf '%7s accounts: cycle %6.2f s, %4d MB peak (%s scored) | minimal client %6.2f s, %4d MB | ratio %s\n' \
    "$accounts" "$cycle_s" $((cycle_kb / 1024)) "$scored" "$client_s" $((client_kb / 1024)) "$ratio"
  cat "$work/client.txt"

  kill "$sandbox"; wait "$sandbox" 2>/dev/null || true
done
