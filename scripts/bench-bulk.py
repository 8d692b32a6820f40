#!/usr/bin/env python3
"""Time of the bulk flag operations and user_blast_radius through the local server (`make dev`
must be running).

Creates a fresh organization, project, user and key with flagsctl (so the dev project is left
alone), N flags and P persons in that project, then times one bulk_update_tags, bulk_keys and
bulk_delete request over all N flags and user_blast_radius over the persons. Standard library only.

    python3 scripts/bench-bulk.py [--flags 500] [--persons 3000]
"""

import argparse
import concurrent.futures
import json
import os
import time
import urllib.error
import urllib.request

from benchlib import ROOT, flagsctl


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flags", type=int, default=500)
    parser.add_argument("--persons", type=int, default=3000)
    parser.add_argument("--credentials", default=os.path.join(ROOT, ".local", "dev-credentials.json"))
    args = parser.parse_args()

    with open(args.credentials) as f:
        api_url = json.load(f)["api_url"]
    org = flagsctl("create-org", "--name", "bench")
    project = flagsctl("create-project", "--org", org["id"], "--name", "bench")
    user = flagsctl("create-user", "--org", org["id"], "--email", f"bench-{time.time_ns()}@example.com")
    key = flagsctl("create-key", "--user", str(user["id"]), "--scopes", "*")["key"]
    base = f"/api/projects/{project['id']}/feature_flags/"

    def call(path, body, auth=True):
        headers = {"content-type": "application/json"}
        if auth:
            headers["authorization"] = f"Bearer {key}"
        req = urllib.request.Request(api_url + path, data=json.dumps(body).encode(), headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=300) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, e.read()[:300]

    def create(i):
        body = {
            "key": f"bench-{i}",
            "filters": {"groups": [{"properties": [], "rollout_percentage": 50}]},
            "_should_create_usage_dashboard": False,
        }
        return call(base, body)[1]["id"]

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        ids = list(pool.map(create, range(args.flags)))
    for start in range(0, args.persons, 100):
        batch = [
            {"event": "$identify", "distinct_id": f"p{i}",
             "properties": {"$set": {"plan": "pro" if i % 4 == 0 else "free"}}}
            for i in range(start, min(args.persons, start + 100))
        ]
        call("/batch/", {"api_key": project["api_token"], "batch": batch}, auth=False)

    def timed(name, path, body):
        started = time.monotonic()
        status, answer = call(path, body)
        print(f"{name}: {status} in {time.monotonic() - started:.2f} s")
        return answer

    timed("bulk_update_tags", base + "bulk_update_tags/", {"ids": ids, "action": "add", "tags": ["bench"]})
    timed("bulk_keys", base + "bulk_keys/", {"ids": ids})
    timed("bulk_delete", base + "bulk_delete/", {"ids": ids})
    condition = {"properties": [{"key": "plan", "type": "person", "value": ["pro"], "operator": "exact"}]}
    answer = timed("user_blast_radius", base + "user_blast_radius/", {"condition": condition})
    print(f"  {answer}")


if __name__ == "__main__":
    main()
