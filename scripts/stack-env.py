#!/usr/bin/env python3
"""Prints `export NAME=value` lines for a deployed stack's outputs, so `flagsctl --aws` and curl
use the deployed tables and API:

    eval "$(python3 scripts/stack-env.py --stack-name feature-flags --region eu-west-1)"

Sets API_URL, FLAGS_TABLE, ACTIVITY_TABLE, IDENTITY_TABLE, EARLY_ACCESS_TABLE,
HASH_KEY_OVERRIDES_TABLE, PERSONS_TABLE, COHORTS_TABLE, USAGE_TABLE, AWS_REGION and FLAGSCTL_AWS=1. Reads the outputs with
`sam list stack-outputs` (the SAM CLI in .venv, or on PATH) and the usual AWS credentials.
"""

import argparse
import json
import os
import shlex
import shutil
import subprocess
import sys

OUTPUTS = {
    "ApiUrl": "API_URL",
    "FlagsTableName": "FLAGS_TABLE",
    "ActivityTableName": "ACTIVITY_TABLE",
    "IdentityTableName": "IDENTITY_TABLE",
    "EarlyAccessTableName": "EARLY_ACCESS_TABLE",
    "HashKeyOverridesTableName": "HASH_KEY_OVERRIDES_TABLE",
    "PersonsTableName": "PERSONS_TABLE",
    "CohortsTableName": "COHORTS_TABLE",
    "UsageTableName": "USAGE_TABLE",
}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stack-name", required=True)
    parser.add_argument("--region", default=os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION"))
    args = parser.parse_args()
    if not args.region:
        sys.exit("stack-env: give --region (or set AWS_REGION)")
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    sam = os.path.join(root, ".venv", "bin", "sam")
    if not os.path.exists(sam):
        sam = shutil.which("sam") or sys.exit("stack-env: no sam CLI (run make setup)")
    out = subprocess.run(
        [sam, "list", "stack-outputs", "--stack-name", args.stack_name, "--region", args.region, "--output", "json"],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "SAM_CLI_TELEMETRY": "0"},
    ).stdout
    found = {o["OutputKey"]: o["OutputValue"] for o in json.loads(out)}
    missing = [key for key in OUTPUTS if key not in found]
    if missing:
        sys.exit(f"stack-env: stack {args.stack_name} has no output {', '.join(missing)}")
    for key, name in OUTPUTS.items():
        value = found[key].rstrip("/") if name == "API_URL" else found[key]
        print(f"export {name}={shlex.quote(value)}")
    print(f"export AWS_REGION={shlex.quote(args.region)}")
    print("export FLAGSCTL_AWS=1")


if __name__ == "__main__":
    main()
