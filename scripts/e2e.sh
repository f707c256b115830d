#!/usr/bin/env bash
# End-to-end checks, the way people reach the server: a real server process on a fresh
# embedded PostgreSQL, then
#   1. the Postman collection, run top to bottom by newman;
#   2. a generative run of schemathesis against /api-docs/openapi.json that fails on any 5xx;
#   3. Swagger UI rendered in headless Chromium (screenshot kept in target/e2e/swagger.png);
#   4. a graceful shutdown that also stops the embedded PostgreSQL.
# Needs: cargo, curl, npx, python3 and chromium.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# The server binary where cargo puts it (CARGO_TARGET_DIR and build settings included): cargo
# itself reports the path of what it built (nothing to do after `cargo test`).
bin=$(cd "$root" && cargo build --bin event-booking --message-format=json-render-diagnostics |
  python3 -c 'import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable"):
        print(m["executable"])')
[ -x "$bin" ] || { echo "cargo did not report the server binary"; exit 1; }
target_dir=$(cd "$root" && cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
out="$target_dir/e2e"
mkdir -p "$out"
step() { echo "--- e2e: $*"; }

work=$(mktemp -d /tmp/event-booking-e2e.XXXXXX)
chmod 755 "$work" # the postgres account must reach the data directory when we run as root
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
pid=""
cleanup() {
  if [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null; then kill -INT "$pid"; wait "$pid" || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

step "starting the server on $base (embedded PostgreSQL in $work)"
(cd "$work" && exec env -u DATABASE_URL PORT="$port" RATE_LIMIT_ENABLED=false RUST_LOG=warn \
  JWT_SECRET=e2e-secret-e2e-secret-e2e-secret-e2e "$bin") >"$out/server.log" 2>&1 &
pid=$!
for _ in $(seq 1 120); do
  curl -fs "$base/health" >/dev/null 2>&1 && break
  kill -0 "$pid" 2>/dev/null || { cat "$out/server.log"; exit 1; }
  sleep 0.5
done
curl -fs "$base/health"
echo

step "newman: docs/postman/event-booking.postman_collection.json"
(cd "$out" && npx --yes newman@6 run "$root/docs/postman/event-booking.postman_collection.json" \
  --env-var "baseUrl=$base" --color off)

# The live streams are excluded: they stay open by design (their own tests read them).
step "schemathesis: no 5xx on any route"
if [ ! -x "$out/venv/bin/st" ]; then
  python3 -m venv "$out/venv"
  "$out/venv/bin/pip" install -q --disable-pip-version-check schemathesis==4.32.5
fi
token=$(curl -fs -X POST "$base/auth/register" -H 'Content-Type: application/json' \
  -d '{"firstname":"Fuzz","lastname":"Organizer","email":"fuzz@example.com","password":"Str0ng!Passw0rd","role":"ORGANIZER"}' |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["accessToken"])')
(cd "$out" && "$out/venv/bin/st" run "$base/api-docs/openapi.json" \
  -H "Authorization: Bearer $token" --checks not_a_server_error \
  --exclude-path-regex '/live$' --request-timeout 20 \
  --max-examples 50 --max-time 90 --workers 2 --generation-database none --no-color)

step "chromium: Swagger UI renders every operation"
chrome=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --user-data-dir="$work/chrome" --virtual-time-budget=20000 --window-size=1280,4000)
"${chrome[@]}" --dump-dom "$base/api-docs/" >"$out/swagger-dom.html" 2>"$out/chromium.log"
"${chrome[@]}" --screenshot="$out/swagger.png" "$base/api-docs/" 2>>"$out/chromium.log"
for expected in '/auth/register' '/auth/login' '/auth/me' '/events/organizer/my-events' \
  '/events/{id}' '/events/{id}/ticket-types/{typeId}' '/bookings/{bookingReference}' \
  'Authorize' 'Event Booking API'; do
  grep -qF "$expected" "$out/swagger-dom.html" || { echo "Swagger UI lacks $expected"; exit 1; }
done
operations=$(grep -o 'opblock-summary-path' "$out/swagger-dom.html" | wc -l)
echo "Swagger UI rendered $operations operations; screenshot in $out/swagger.png"
[ "$operations" -ge 17 ] || { echo "expected at least 17 operations"; exit 1; }

step "chromium: the live seat board"
# The board keeps its event stream open, so the page never goes idle: stop after 5 s instead
# of waiting for virtual time.
board=(chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run
  --disable-background-networking --disable-component-update --disable-sync
  --user-data-dir="$work/chrome-board" --timeout=5000 --window-size=1280,900)
timeout 60 "${board[@]}" --dump-dom "$base/" >"$out/board-dom.html" 2>>"$out/chromium.log"
timeout 60 "${board[@]}" --screenshot="$out/board.png" "$base/" 2>>"$out/chromium.log"
grep -qF 'Postman Gala' "$out/board-dom.html" || { echo "the board lacks the published event"; exit 1; }
grep -qF 'seats left' "$out/board-dom.html" || { echo "the board shows no seat counts"; exit 1; }
echo "board rendered; screenshot in $out/board.png"

step "graceful shutdown"
kill -INT "$pid"
wait "$pid"
pid=""
if pgrep -f "postgres -D $work" >/dev/null; then echo "the embedded PostgreSQL is still running"; exit 1; fi
echo "server and its PostgreSQL stopped"
echo "e2e: all checks passed"
