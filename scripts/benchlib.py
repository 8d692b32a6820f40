"""Helpers shared by the scripts/bench-*.py latency scripts (standard library only)."""

import http.client
import json
import os
import statistics
import subprocess
import sys
import time
import urllib.parse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json(cmd, env=None):
    """Runs a command in the repository and parses the one JSON object it prints."""
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def flagsctl(*args):
    return flagsctl_with(None)(*args)


def read_env_file(path):
    """KEY=VALUE lines (optionally quoted), as cargo lambda reads them."""
    env = {}
    if not os.path.exists(path):
        return env
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#") or "=" not in line:
                continue
            key, value = line.split("=", 1)
            env[key.strip()] = value.strip().strip('"').strip("'")
    return env


def server_env(env_file):
    """This environment with the server's own DynamoDB settings (its env file) and without
    FLAGSCTL_AWS, so what a benchmark seeds lands where the server reads, never in AWS."""
    env = dict(os.environ)
    env.pop("FLAGSCTL_AWS", None)
    env.update(read_env_file(env_file))
    return env


def flagsctl_with(env):
    """flagsctl bound to `env` (see server_env)."""
    return lambda *args: run_json(["cargo", "run", "-q", "-p", "flagsctl", "--", *args], env)


def percentile(values, p):
    """Nearest-rank percentile."""
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(p / 100 * len(ordered)) - 1))
    return ordered[index]


def summary(name, samples, percentiles=(95,), width=44, digits=1):
    """One aligned line: count, median and the given percentiles, in milliseconds."""
    line = f"{name:<{width}} n={len(samples):<5} median={statistics.median(samples):7.{digits}f} ms"
    for p in percentiles:
        line += f"   p{p}={percentile(samples, p):7.{digits}f} ms"
    return line


def flag_body(i, ids):
    """A mix like real projects: person properties, rollouts, variants, payloads, dependencies."""
    kind = i % 5
    conditions = [{
        "properties": [{"key": "email", "type": "person", "operator": "icontains", "value": "@example.com"}],
        "rollout_percentage": 50,
    }]
    filters = {"groups": conditions}
    if kind == 1:
        conditions.append({"properties": [
            {"key": "plan", "type": "person", "operator": "exact", "value": ["pro", "enterprise"]},
            {"key": "age", "type": "person", "operator": "gte", "value": "21"},
        ], "rollout_percentage": 100})
    elif kind == 2:
        filters["multivariate"] = {"variants": [
            {"key": "control", "rollout_percentage": 50},
            {"key": "test", "rollout_percentage": 50},
        ]}
        filters["payloads"] = {"test": json.dumps({"color": "blue"})}
    elif kind == 3:
        conditions[0]["properties"] = [
            {"key": "app_version", "type": "person", "operator": "semver_gte", "value": "1.2.0"}]
        filters["payloads"] = {"true": json.dumps({"limit": i})}
    elif kind == 4 and ids:
        conditions[0]["properties"].append(
            {"key": str(ids[-1]), "type": "flag", "operator": "flag_evaluates_to", "value": True})
    return {"key": f"bench-{i}", "name": f"Benchmark flag {i}", "filters": filters}


def seed_project(api_url, name, flags):
    """A fresh organization, project, user and `feature_flag:write` key (flagsctl, so the dev
    project is left alone) and `flags` mixed flags created through the API; returns
    (project, key, flag ids)."""
    org = flagsctl("create-org", "--name", name)
    project = flagsctl("create-project", "--org", org["id"], "--name", name)
    user = flagsctl("create-user", "--org", org["id"], "--email", f"{name}-{time.time_ns()}@example.com")
    key = flagsctl("create-key", "--user", str(user["id"]), "--scopes", "feature_flag:write")["key"]
    target = urllib.parse.urlsplit(api_url)
    conn = http.client.HTTPConnection(target.hostname, target.port or 80, timeout=60)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    base = f"/api/projects/{project['id']}/feature_flags/"
    ids = []
    for i in range(flags):
        conn.request("POST", base, body=json.dumps(flag_body(i, ids)), headers=headers)
        response = conn.getresponse()
        created = response.read()
        if response.status != 201:
            sys.exit(f"creating flag {i}: {response.status} {created[:300]!r}")
        ids.append(json.loads(created)["id"])
    conn.close()
    return project, key, ids
