#!/usr/bin/env python3
"""Planner benchmark: `cutover plan` and `cutover lint` on a generated release of 2,000
migration files (~20,000 statements) and 50 services, beside squawk (PyPI `squawk-cli`) linting
the same files. Prints a Markdown table for the README.

Run it with bench/plan-bench.sh, which builds the release binary and installs squawk first.
usage: plan_bench.py CUTOVER SQUAWK WORKDIR [runs]
"""
import os
import statistics
import subprocess
import sys
import time

cutover, squawk, work = sys.argv[1], sys.argv[2], sys.argv[3]
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 10
migrations = os.path.join(work, "migrations")
files = sorted(os.path.join(migrations, f) for f in os.listdir(migrations))


def measure(name, argv, ok=(0, 1, 2)):
    """Median and best wall time, and peak RSS, over `runs` runs (after one warm-up). Stops
    unless every exit code is in `ok` (a plan that stops on errors must not pass for one)."""
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    walls, rss = [], []
    for _ in range(runs):
        t = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M"] + argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        walls.append(time.perf_counter() - t)
        rss.append(int(p.stderr.strip().splitlines()[-1]))
        if p.returncode not in ok:
            sys.exit(f"{name} failed with exit code {p.returncode}")
    return {"name": name, "median": statistics.median(walls), "best": min(walls), "rss_mb": max(rss) / 1024}


rows = [
    measure("cutover plan (JSON)", [cutover, "plan", os.path.join(work, "spec.toml"), "--format", "json"], (0,)),
    measure("cutover plan (markdown)", [cutover, "plan", os.path.join(work, "spec.toml"), "--format", "markdown"], (0,)),
    measure("cutover lint", [cutover, "lint", migrations]),
    measure("squawk", [squawk] + files),
]
statements = sum(1 for f in files for line in open(f) if line.strip() and not line.startswith("--"))
print(f"\n{len(files)} migration files, about {statements} statement lines, 50 services; {runs} runs each, {os.cpu_count()} cores\n")
print("| command | median | best | peak RSS |")
print("|---|---|---|---|")
for r in rows:
    print(f"| {r['name']} | {r['median'] * 1000:.0f} ms | {r['best'] * 1000:.0f} ms | {r['rss_mb']:.0f} MiB |")
lint, sq = rows[2], rows[3]
print(f"\ncutover lint / squawk (median wall time): {lint['median'] / sq['median']:.2f}")
plan_ms = rows[0]["median"] * 1000
print(f"cutover plan target (< 1000 ms): {'met' if plan_ms < 1000 else 'MISSED'} ({plan_ms:.0f} ms)")
