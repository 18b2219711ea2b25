#!/usr/bin/env python3
"""Migration-step overhead: the sample app's migrations applied by `cutover apply` (a schema-only
release: preflight, expand and contract steps with advisory lock, timeouts, phase records and
refinery history, every step two fsync'ed events) beside plain refinery applying the same files,
each on a fresh database, wall time of the whole process. V4 (CREATE INDEX CONCURRENTLY) is left
out: refinery runs every migration in a transaction, where CONCURRENTLY fails.
usage: migrate_bench.py CUTOVER REFINERY_COMPARE [rounds]"""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.argv, argv = sys.argv[:2], sys.argv
import backfill_bench as bb  # noqa: E402  (the throwaway cluster)

CUTOVER, REFINERY = os.path.abspath(argv[1]), os.path.abspath(argv[2])
ROUNDS = int(argv[3]) if len(argv) > 3 else 10
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    work = tempfile.mkdtemp(prefix="cutover-migrate-bench-")
    mig = os.path.join(work, "migrations")
    os.makedirs(mig)
    for f in sorted(os.listdir(os.path.join(ROOT, "migrations-sample/app"))):
        if f.endswith(".sql") and not f.startswith("V4__"):
            shutil.copy(os.path.join(ROOT, "migrations-sample/app", f), mig)
    with open(os.path.join(work, "spec.toml"), "w") as s:
        s.write('[release]\nname = "overhead"\n\n[[database]]\nname = "main"\nurl_env = "DATABASE_URL"\nmigrations = "migrations"\nbackup = { enabled = false }\n')
    cluster = bb.Cluster()
    try:
        times = {"refinery": [], "cutover": []}
        # The migration work alone: refinery's own connect + apply time (it prints it), and the
        # span of cutover's migrate steps in its event log (first start to last end).
        steps = {"refinery": [], "cutover": []}
        for r in range(ROUNDS):
            for tool in ("refinery", "cutover"):
                db = f"{tool}_{r}"
                bb.sql(cluster.url(), f"CREATE DATABASE {db}")
                url = cluster.url(db)
                if tool == "refinery":
                    argv_ = [REFINERY, mig, url]
                    env = os.environ
                else:
                    argv_ = [CUTOVER, "apply", "spec.toml", "--format", "quiet"]
                    env = dict(os.environ, DATABASE_URL=url, CUTOVER_STATE_DIR=os.path.join(work, ".cutover"))
                t = time.perf_counter()
                done = subprocess.run(argv_, cwd=work, env=env, check=True, capture_output=True)
                times[tool].append((time.perf_counter() - t) * 1000)
                if tool == "refinery":
                    steps[tool].append(float(done.stdout.decode().strip()))
                else:
                    runs = sorted(os.listdir(os.path.join(work, ".cutover", "runs")))
                    log = subprocess.run([CUTOVER, "log", runs[-1], "--format", "json"], cwd=work, env=env, capture_output=True, check=True).stdout.decode()
                    import json
                    from datetime import datetime
                    ev = [json.loads(l) for l in log.splitlines()]
                    ts = [datetime.fromisoformat(e["time"].replace("Z", "+00:00")) for e in ev if str(e.get("step", "")).startswith("migrate/") and e["type"] in ("step_started", "step_succeeded")]
                    steps[tool].append((max(ts) - min(ts)).total_seconds() * 1000)
                applied = bb.sql(url, "SELECT count(*) FROM refinery_schema_history")[0][0]
                assert applied == 6, f"{tool} applied {applied}"
        ref, cut = statistics.median(times["refinery"]), statistics.median(times["cutover"])
        print(f"\n6 migrations (sample app minus V4), fresh database each round, {ROUNDS} rounds, median wall time of the process\n")
        print("| tool | median | best |")
        print("|---|---|---|")
        print(f"| plain refinery | {ref:.0f} ms | {min(times['refinery']):.0f} ms |")
        print(f"| cutover apply (schema-only release) | {cut:.0f} ms | {min(times['cutover']):.0f} ms |")
        print(f"\ncutover / refinery, whole process: {cut / ref:.2f}")
        rs, cs = statistics.median(steps["refinery"]), statistics.median(steps["cutover"])
        print(f"migration work only (refinery: connect + apply; cutover: its migrate steps): {rs:.1f} ms vs {cs:.1f} ms, {cs / rs:.2f}")
    finally:
        cluster.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
