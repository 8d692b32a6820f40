#!/usr/bin/env bash
# `make deploy` (after `make build`): `sam deploy --guided` the first time, which asks for the
# stack name, region and parameters and saves the answers to samconfig.toml; plain `sam deploy`
# with those answers afterwards. Extra arguments go to sam (e.g. `make deploy
# ARGS="--parameter-overrides PayloadKeyRevision=2"`). See README "Deploying to AWS".
set -euo pipefail
LOG_NAME=deploy
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

[[ -d .aws-sam/build ]] || die "nothing built yet: run make build first"
export SAM_CLI_TELEMETRY=0
if [[ -f samconfig.toml ]]; then
    log "sam deploy (answers from samconfig.toml)"
    exec sam deploy "$@"
fi
log "first deploy: sam deploy --guided (answers are saved to samconfig.toml)"
exec sam deploy --guided "$@"
