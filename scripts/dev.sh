#!/usr/bin/env bash
# `make dev`: DynamoDB Local persisted under .local/dynamodb/ on 127.0.0.1:${DYNAMODB_PORT:-8000}
# (reused if something already listens there), tables from template.yaml, a generated .env.local,
# idempotently seeded dev credentials in .local/dev-credentials.json, and the API served by the
# local API server (`local-api`: every function of template.yaml behind a stand-in for API
# Gateway) on 127.0.0.1:${PORT:-9000}, rebuilt and restarted when a source file changes.
# Ctrl-C stops everything this script started.
set -euo pipefail
LOG_NAME=dev
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

DDB_PORT="${DYNAMODB_PORT:-8000}"
API_PORT="${PORT:-9000}"
DDB_PID=""
API_PID=""
PUMP_PID=""
SCHEDULE_PUMP_PID=""
# Scheduled flag changes are applied by a tick every this many seconds (60 on AWS): short here,
# so a change scheduled a minute ahead happens then, give or take a few seconds.
export SCHEDULE_PUMP_INTERVAL="${SCHEDULE_PUMP_INTERVAL:-5}"

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [[ -n "$SCHEDULE_PUMP_PID" ]]; then
        log "stopping the scheduled-changes pump (pid $SCHEDULE_PUMP_PID)"
        stop_pid "$SCHEDULE_PUMP_PID" TERM 10
    fi
    if [[ -n "$PUMP_PID" ]]; then
        log "stopping the cohort stream pump (pid $PUMP_PID)"
        stop_pid "$PUMP_PID" TERM 10
    fi
    if [[ -n "$API_PID" ]]; then
        log "stopping the local API server (pid $API_PID)"
        stop_pid "$API_PID" TERM 20
    fi
    if [[ -n "$DDB_PID" ]]; then
        log "stopping DynamoDB Local (pid $DDB_PID)"
        stop_pid "$DDB_PID" TERM 20
    fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if port_open "$API_PORT"; then
    die "127.0.0.1:$API_PORT is already in use (another make dev?); choose another with PORT=..."
fi

mkdir -p .local
if port_open "$DDB_PORT"; then
    log "reusing the DynamoDB already listening on 127.0.0.1:$DDB_PORT (left running on exit)"
else
    start_dynamodb "$DDB_PORT" "$ROOT/.local/dynamodb" "$ROOT/.local/dynamodb.log"
fi
endpoint="http://127.0.0.1:$DDB_PORT"

log "building the console, flagsctl and the local API server"
node console/build.mjs
cargo build --quiet -p flagsctl -p local-api

# Table names are the template's defaults under TABLE_PREFIX (empty by default); FLAGS_TABLE
# and friends still override one table each (shared/src/store/mod.rs, Tables::from_env).
table_prefix="${TABLE_PREFIX:-}"
flagsctl() {
    env -u FLAGSCTL_AWS AWS_ENDPOINT_URL_DYNAMODB="$endpoint" TABLE_PREFIX="$table_prefix" \
        "$(flagsctl_bin)" "$@"
}

created="$(flagsctl create-tables --template template.yaml)"
log "tables: $(tr -d ' \n' <<<"$created")"

# One payload-encryption key per checkout, kept so encrypted payloads stay readable.
key_file=.local/flag-payload-encryption.key
if [[ ! -s "$key_file" ]]; then
    (umask 077 && new_fernet_key >"$key_file")
fi
write_env_file .env.local "$endpoint" "$table_prefix" "$(cat "$key_file")"

log "dev credentials (.local/dev-credentials.json):"
flagsctl seed-dev --out .local/dev-credentials.json --api-url "http://127.0.0.1:$API_PORT"

start_api() {
    (set -a && source .env.local && exec "$CARGO_TARGET_DIR/debug/local-api" \
        --port "$API_PORT" --template template.yaml) </dev/null &
    API_PID=$!
    wait_http "$API_PORT" "$API_PID" 60 || die "the local API server did not start"
}

log "serving http://127.0.0.1:$API_PORT (Ctrl-C stops everything)"
start_api
log "web console: http://127.0.0.1:$API_PORT/ (sign in with the personal_api_key above; docs/console.md)"
# DynamoDB Local's cohorts stream → the cohort-jobs function (Lambda's event source locally).
start_cohort_pump "$endpoint" "${table_prefix}cohorts" "$API_PORT" .local/cohort-pump.log
# Due scheduled flag changes → the scheduled-changes function (EventBridge Scheduler locally).
start_schedule_pump "$API_PORT" .local/schedule-pump.log

# Hot reload: after an edit to the Rust sources, the console's sources or the template, rebuild;
# on success swap the server (a failed build keeps the running one and shows the errors).
stamp=.local/dev-build.stamp
touch "$stamp"
while kill -0 "$API_PID" 2>/dev/null; do
    sleep 1
    # What the server is built from: sources, manifests, the template and the document.
    changed="$(find shared/src functions/*/src local-api/src Cargo.toml ./*/Cargo.toml \
        functions/*/Cargo.toml template.yaml openapi.yaml console/src -newer "$stamp" \
        \( -name '*.rs' -o -name '*.toml' -o -name '*.yaml' -o -name '*.ts' -o -name '*.tsx' \
        -o -name '*.css' -o -name '*.html' \) -print -quit)"
    [[ -n "$changed" ]] || continue
    touch "$stamp"
    log "$changed changed: rebuilding"
    # The console's assets are compiled into the console function: rebuilt first (if unchanged,
    # console/build.mjs skips it).
    if node console/build.mjs && cargo build --quiet -p local-api; then
        stop_pid "$API_PID" TERM 20
        start_api
        log "restarted the local API server (pid $API_PID)"
    fi
done
die "the local API server (pid $API_PID) stopped"
