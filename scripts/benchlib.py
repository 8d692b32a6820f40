"""Helpers shared by the scripts/bench-*.py latency scripts (standard library only)."""

import json
import os
import statistics
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_json(cmd, env=None):
    """Runs a command in the repository and parses the one JSON object it prints."""
    out = subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout)


def flagsctl(*args):
    return run_json(["cargo", "run", "-q", "-p", "flagsctl", "--", *args])


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
