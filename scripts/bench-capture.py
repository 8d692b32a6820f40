#!/usr/bin/env python3
"""Capture throughput through the local server: events per second of `POST /batch/`.

`make dev` (or any local API server of this repo) must be running. Creates a fresh
organization and project with flagsctl (the dev project is left alone), warms the `flags`
function, then posts batches of 1,000 events, one request at a time, as posthog-python sends
them, in two shapes:

  * new persons: 1,000 distinct ids never seen before, each event with `$set` (every event
    creates a person: a distinct-id item and a person item);
  * 100 persons x 10 events: `$set`/`$set_once` updates of 100 persons that already exist
    (the batch folds to 100 person writes).

Prints, per shape, the median and p95 request time and the events per second of the median
request. DynamoDB endpoint and table names come from --env-file (default .env.local, written by
`make dev`). Standard library only.

    python3 scripts/bench-capture.py [--runs 10] [--events 1000]
"""

import argparse
import http.client
import json
import os
import statistics
import sys
import time
import urllib.parse

from benchlib import ROOT, flagsctl_with, server_env, summary



def event(distinct_id, i, run):
    return {
        "event": "$pageview",
        "distinct_id": distinct_id,
        "timestamp": "2026-01-01T00:00:00Z",
        "properties": {
            "$current_url": f"https://example.com/page/{i}",
            "$lib": "posthog-python",
            "$set": {"plan": ["free", "pro", "team"][i % 3], "last_run": run, "visits": i},
            "$set_once": {"first_seen_run": run},
        },
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--credentials", default=os.path.join(ROOT, ".local", "dev-credentials.json"))
    parser.add_argument("--env-file", default=os.path.join(ROOT, ".env.local"))
    args = parser.parse_args()

    env = server_env(args.env_file)
    flagsctl = flagsctl_with(env)

    with open(args.credentials) as f:
        api_url = json.load(f)["api_url"]
    org = flagsctl("create-org", "--name", "bench-capture")
    project = flagsctl("create-project", "--org", org["id"], "--name", "bench-capture")
    token = project["api_token"]

    target = urllib.parse.urlsplit(api_url)
    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=300)
    headers = {"Content-Type": "application/json", "User-Agent": "posthog-python/7.91.1"}

    def capture(events):
        body = json.dumps({"api_key": token, "batch": events})
        start = time.perf_counter()
        conn.request("POST", "/batch/", body=body, headers=headers)
        response = conn.getresponse()
        payload = response.read()
        elapsed = (time.perf_counter() - start) * 1000
        if response.status != 200:
            sys.exit(f"POST /batch/ -> {response.status}: {payload[:300]!r}")
        return elapsed

    # Warm-up: the first request fills the function's caches.
    for i in range(3):
        capture([event(f"warm-{i}", i, 0)])

    n = args.events
    shapes = {
        "new persons (1 event each)": lambda run: [event(f"new-{run}-{i}", i, run) for i in range(n)],
        "100 persons x 10 events": lambda run: [event(f"known-{i % 100}", i, run) for i in range(n)],
    }
    # The second shape updates persons that exist already.
    capture([event(f"known-{i}", i, 0) for i in range(100)])
    print(f"POST /batch/ with {n} events, {args.runs} runs each, through {api_url}")
    for name, build in shapes.items():
        times = [capture(build(run)) for run in range(1, args.runs + 1)]
        median = statistics.median(times)
        print(summary(name, times, width=30) + f"   {n / (median / 1000):8.0f} events/s")


if __name__ == "__main__":
    main()
