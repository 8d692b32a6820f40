#!/usr/bin/env python3
"""Local stand-in for the EventBridge Scheduler schedule of the scheduled-changes function.

On AWS (template.yaml, ScheduledChangesFunction) a `rate(1 minute)` schedule invokes the
executor, which applies every scheduled flag change that is due (docs/scheduled-changes.md).
Locally nothing invokes it, so this pump does, through the local API server's stand-in for
Lambda's Invoke API (`POST /2015-03-31/functions/scheduled-changes/invocations`, synchronous),
every `--interval` seconds: 60 like AWS by default; `make dev` and the tests tick faster
(SCHEDULE_PUMP_INTERVAL) so a change scheduled a few seconds ahead happens a few seconds later.

Like the schedule, a failed tick is not retried: the next tick reads what is due then, so a
missed or repeated tick changes nothing but timing.

Usage: schedule-pump.py --invoke http://127.0.0.1:9000 [--function scheduled-changes]
           [--interval 60]
"""

import argparse
import json
import sys
import time
import urllib.error
import urllib.request


def log(message):
    print(f"schedule-pump: {message}", file=sys.stderr, flush=True)


def tick(url):
    """One invocation; the executor's counts, or None when it failed or was unreachable."""
    request = urllib.request.Request(
        url, data=b"{}", method="POST", headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            body = json.loads(response.read() or b"null")
            if response.headers.get("x-amz-function-error"):
                log(f"the executor failed: {body}")
                return None
            return body
    except (urllib.error.URLError, OSError, ValueError) as e:
        # The local API server restarts after a rebuild (`make dev`); the next tick retries.
        log(f"invoke failed: {e}")
        return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--invoke", required=True, help="the local API server's base URL")
    parser.add_argument("--function", default="scheduled-changes")
    parser.add_argument("--interval", type=float, default=60.0, help="seconds between ticks")
    args = parser.parse_args()
    if args.interval <= 0:
        parser.error("--interval must be positive")
    url = f"{args.invoke.rstrip('/')}/2015-03-31/functions/{args.function}/invocations"
    log(f"invoking {url} every {args.interval:g}s")
    while True:
        started = time.monotonic()
        counts = tick(url)
        if counts and any(counts.get(k) for k in ("applied", "failed", "closed")):
            log(f"tick: {counts}")
        time.sleep(max(0.0, args.interval - (time.monotonic() - started)))


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
