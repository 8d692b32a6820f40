#!/usr/bin/env python3
"""Latency of SDK requests through the local server, warm (`make dev` must be running).

Creates a fresh organization, project, user and key with flagsctl (so the dev project is left
alone) and N mixed flags in that project (property conditions, rollouts, variants, payloads, a
few dependencies), warms the `flags` function, then times, one request at a time on a kept-alive
connection, what an SDK sends:

  * POST /flags/?v=4 as posthog-python sends it (a person with properties, all flags);
  * GET /flags/definitions with the project secret key and the last ETag (a 304 poll);
  * GET /flags/definitions without it (the full payload).

Responses are requested gzip-compressed like both SDKs do. Prints median, p95 and p99 in
milliseconds. Standard library only.

    python3 scripts/bench-flags.py [--flags 100] [--requests 1000]
"""

import argparse
import gzip
import http.client
import json
import os
import sys
import time
import urllib.parse

from benchlib import ROOT, seed_project, summary


class Client:
    def __init__(self, api_url):
        target = urllib.parse.urlsplit(api_url)
        self.conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=60)

    def request(self, method, path, body=None, headers=None, ok=(200,)):
        headers = {"Accept-Encoding": "gzip", **(headers or {})}
        data = json.dumps(body) if body is not None else None
        start = time.perf_counter()
        self.conn.request(method, path, body=data, headers=headers)
        response = self.conn.getresponse()
        payload = response.read()
        if response.getheader("content-encoding") == "gzip":
            payload = gzip.decompress(payload)
        elapsed = (time.perf_counter() - start) * 1000
        if response.status not in ok:
            sys.exit(f"{method} {path} -> {response.status}: {payload[:300]!r}")
        return elapsed, response, payload


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=100)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--credentials", default=os.path.join(ROOT, ".local", "dev-credentials.json"))
    args = parser.parse_args()

    with open(args.credentials) as f:
        api_url = json.load(f)["api_url"]
    project, _, _ = seed_project(api_url, "bench", args.flags)
    client = Client(api_url)

    person = {"distinct_id": "user-1", "api_key": project["api_token"], "groups": {}, "group_properties": {},
              "person_properties": {"email": "ada@example.com", "plan": "pro", "age": 36, "app_version": "1.4.2"},
              "geoip_disable": True, "device_id": None}
    evaluate = lambda: client.request(
        "POST", "/flags/?v=4", person, {"Content-Type": "application/json", "User-Agent": "posthog-python/7.91.1"})
    secret = {"Authorization": f"Bearer {project['secret_api_key']}"}
    definitions_path = f"/flags/definitions?token={project['api_token']}&send_cohorts"

    for _ in range(20):  # first request starts the function; then the cache is warm
        evaluate()
    _, _, answer = evaluate()
    answered = len(json.loads(answer)["flags"])
    flags_times = [evaluate()[0] for _ in range(args.requests)]

    _, first, body = client.request("GET", definitions_path, headers=secret)
    etag = first.getheader("etag")
    poll = {**secret, "If-None-Match": etag}
    polls = [client.request("GET", definitions_path, headers=poll, ok=(304,))[0]
             for _ in range(args.requests // 2)]
    full = [client.request("GET", definitions_path, headers=secret)[0] for _ in range(args.requests // 10)]

    print(f"project {project['id']} with {args.flags} flags ({answered} answered per request), "
          f"definitions {len(body)} bytes, server {api_url}")
    print(summary("POST /flags/?v=4 (warm)", flags_times, percentiles=(95, 99), digits=2))
    print(summary("GET /flags/definitions, 304 (If-None-Match)", polls, percentiles=(95, 99), digits=2))
    print(summary("GET /flags/definitions, 200", full, percentiles=(95, 99), digits=2))


if __name__ == "__main__":
    main()
