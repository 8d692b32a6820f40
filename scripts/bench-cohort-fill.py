#!/usr/bin/env python3
"""Time to fill a static cohort from a flag over N persons, through the local server.

Needs `make dev` running (it serves the API and runs scripts/cohort-stream-pump.py, which
drives the cohort-jobs function from the cohorts table's stream). Creates a fresh organization,
project, user and key with flagsctl (the dev project is left alone), captures N persons through
`/batch/` (1,000 events a request, `$set` of `plan`: every other person `pro`), creates a flag
on `plan = pro`, then `POST …/create_static_cohort_for_flag/` and polls the cohort until
`is_calculating` is false. Prints persons per second of the fill (persons walked, not members)
and checks `count`. Standard library only.

    python3 scripts/bench-cohort-fill.py [--persons 10000]

flagsctl reaches DynamoDB the way `make dev` does (AWS_ENDPOINT_URL_DYNAMODB, TABLE_PREFIX from
the environment, else DynamoDB Local's defaults).
"""

import argparse
import json
import os
import sys
import time
import urllib.request

from benchlib import ROOT, flagsctl


def call(api_url, method, path, body=None, key=None, ok=(200, 201)):
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(api_url + path, data=data, method=method, headers=headers)
    with urllib.request.urlopen(request, timeout=300) as response:
        payload = response.read()
        if response.status not in ok:
            sys.exit(f"{method} {path} -> {response.status}: {payload[:300]!r}")
        return json.loads(payload or b"null")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=10000)
    parser.add_argument("--credentials", default=os.path.join(ROOT, ".local", "dev-credentials.json"))
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for the fill")
    args = parser.parse_args()

    with open(args.credentials) as f:
        api_url = json.load(f)["api_url"].rstrip("/")
    org = flagsctl("create-org", "--name", "bench-cohort")
    project = flagsctl("create-project", "--org", org["id"], "--name", "bench-cohort")
    user = flagsctl("create-user", "--org", org["id"], "--email", f"bench-{time.time_ns()}@example.com")
    key = flagsctl(
        "create-key", "--user", str(user["id"]), "--scopes", "feature_flag:write,cohort:read"
    )["key"]
    token = project["api_token"]
    pid = project["id"]

    start = time.perf_counter()
    for first in range(0, args.persons, 1000):
        batch = [
            {"event": "$pageview", "distinct_id": f"bench-person-{i}",
             "properties": {"$set": {"plan": "pro" if i % 2 == 0 else "free"}}}
            for i in range(first, min(first + 1000, args.persons))
        ]
        call(api_url, "POST", "/batch/", {"api_key": token, "batch": batch})
    captured = time.perf_counter() - start
    print(f"captured {args.persons} persons in {captured:.1f} s "
          f"({args.persons / captured:.0f} events/s)")

    flag = call(api_url, "POST", f"/api/projects/{pid}/feature_flags/", {
        "key": "bench-cohort-source",
        "filters": {"groups": [{"properties": [
            {"key": "plan", "type": "person", "operator": "exact", "value": ["pro"]}],
            "rollout_percentage": 100}]},
    }, key)
    start = time.perf_counter()
    cohort = call(api_url, "POST",
                  f"/api/projects/{pid}/feature_flags/{flag['id']}/create_static_cohort_for_flag/",
                  {}, key)["cohort"]
    while True:
        got = call(api_url, "GET", f"/api/projects/{pid}/cohorts/{cohort['id']}/", None, key)
        if not got["is_calculating"]:
            break
        if time.perf_counter() - start > args.timeout:
            sys.exit(f"the fill did not finish in {args.timeout:.0f} s: {got}")
        time.sleep(0.2)
    elapsed = time.perf_counter() - start
    expected = (args.persons + 1) // 2
    print(f"filled a static cohort from a flag over {args.persons} persons in {elapsed:.1f} s: "
          f"{args.persons / elapsed:.0f} persons/s, count={got['count']} (expected {expected})")
    if got["count"] != expected:
        sys.exit("count mismatch")


if __name__ == "__main__":
    main()
