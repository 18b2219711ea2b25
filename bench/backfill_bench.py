#!/usr/bin/env python3
"""Backfill benchmark: cutover's batched, resumable backfill of 1,000,000 rows beside a single
`UPDATE users SET full_name = name` on the same data, each with a concurrent writer of the old
app version, reporting rows/s and the writer's worst and p99 latency. Run by
bench/backfill-bench.sh (which installs psycopg into bench/out/venv); prints a Markdown table.
"""
import glob
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

import psycopg

ROWS = int(os.environ.get("ROWS", "1000000"))
BATCHES = [int(b) for b in os.environ.get("BATCHES", "1000,5000").split(",")]
CUTOVER = os.path.abspath(sys.argv[1])
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))[-1]
ROOTUSER = os.geteuid() == 0


def as_pg(args):
    return (["runuser", "-u", "postgres", "--"] if ROOTUSER else []) + args


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Cluster:
    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="cutover-bench-pg-")
        if ROOTUSER:
            subprocess.run(["chown", "-R", "postgres:postgres", self.dir], check=True)
        data = os.path.join(self.dir, "data")
        subprocess.run(as_pg([f"{BIN}/initdb", "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"]), check=True, capture_output=True)
        self.port = free_port()
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.dir} -c shared_buffers=512MB -c max_wal_size=4GB"
        subprocess.run(as_pg([f"{BIN}/pg_ctl", "-D", data, "-o", opts, "-l", os.path.join(self.dir, "log"), "-w", "start"]), check=True, capture_output=True)
        self.data = data

    def url(self, db="postgres"):
        return f"postgres://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self):
        subprocess.run(as_pg([f"{BIN}/pg_ctl", "-D", self.data, "-m", "immediate", "stop"]), capture_output=True)
        shutil.rmtree(self.dir, ignore_errors=True)


def sql(url, text):
    with psycopg.connect(url, autocommit=True) as c:
        return c.execute(text).fetchall() if text.strip().lower().startswith("select") else c.execute(text)


def prepare(cluster, name):
    sql(cluster.url(), f"CREATE DATABASE {name}")
    url = cluster.url(name)
    with open(os.path.join(ROOT, "migrations-sample/rename/V1__create_users.sql")) as f:
        sql(url, f.read())
    sql(url, f"INSERT INTO users (name, email) SELECT 'user ' || g, 'u' || g || '@example.com' FROM generate_series(1, {ROWS}) g")
    sql(url, "VACUUM ANALYZE users")
    return url


class Writer(threading.Thread):
    """The old app version: updates `name` of random rows, ~200 per second, one at a time."""

    def __init__(self, url):
        super().__init__(daemon=True)
        self.url, self.stop, self.latencies = url, threading.Event(), []

    def run(self):
        with psycopg.connect(self.url, autocommit=True) as c:
            i = 0
            while not self.stop.is_set():
                i += 1
                t = time.perf_counter()
                try:
                    c.execute("UPDATE users SET name = name || '.' WHERE id = %s", ((i * 7919) % ROWS + 1,))
                except psycopg.errors.UndefinedColumn:
                    return  # the contract phase dropped `name`: the old version is gone
                self.latencies.append(time.perf_counter() - t)
                time.sleep(0.005)


def measure(url, work):
    w = Writer(url)
    w.start()
    time.sleep(0.5)
    t = time.perf_counter()
    detail = work()
    elapsed = time.perf_counter() - t
    time.sleep(0.3)
    w.stop.set()
    w.join()
    lat = sorted(w.latencies)
    p99 = lat[int(len(lat) * 0.99) - 1] if lat else 0
    return elapsed, max(lat) * 1000, p99 * 1000, len(lat), detail


def cutover_backfill(cluster, batch):
    name = f"bf_cutover_{batch}"
    url = prepare(cluster, name)
    d = tempfile.mkdtemp(prefix="cutover-bench-spec-")
    with open(os.path.join(d, "spec.toml"), "w") as f:
        f.write(f'[release]\nname = "bench"\n\n[[database]]\nname = "main"\nurl_env = "DATABASE_URL"\nmigrations = "{ROOT}/migrations-sample/rename"\nbaseline = 1\nbackup = {{ enabled = false }}\nbackfill = {{ batch_size = {batch} }}\n')
    plan = json.loads(subprocess.run([CUTOVER, "plan", "spec.toml", "--format", "json"], cwd=d, capture_output=True, check=True).stdout)
    v1 = plan["steps"][0]["params"]["databases"][0]["applied"][0]["checksum"]
    sql(url, "CREATE TABLE refinery_schema_history (version INT4 PRIMARY KEY, name VARCHAR(255), applied_on VARCHAR(255), checksum VARCHAR(255))")
    sql(url, f"INSERT INTO refinery_schema_history VALUES (1, 'create_users', 'x', '{v1}')")
    env = dict(os.environ, DATABASE_URL=url, CUTOVER_STATE_DIR=os.path.join(d, ".cutover"))

    def work():
        # The whole schema release runs; the backfill's own duration comes from its events.
        subprocess.run([CUTOVER, "apply", "spec.toml", "--format", "quiet"], cwd=d, env=env, capture_output=True, check=True)
        run = os.listdir(os.path.join(d, ".cutover", "runs"))[0]
        log = subprocess.run([CUTOVER, "log", run, "--format", "json"], cwd=d, env=env, capture_output=True, check=True).stdout.decode().splitlines()
        events = [json.loads(l) for l in log]
        times = {e["type"]: e["time"] for e in events if e.get("step") == "backfill/users.full_name" and e["type"] in ("step_started", "step_succeeded")}
        return times

    elapsed, worst, p99, n, times = measure(url, work)
    from datetime import datetime
    parse = lambda s: datetime.fromisoformat(s.replace("Z", "+00:00"))
    secs = (parse(times["step_succeeded"]) - parse(times["step_started"])).total_seconds()
    left = sql(url, "SELECT count(*) FROM users WHERE full_name IS NULL")[0][0]
    assert left == 0, f"{left} rows not copied"
    shutil.rmtree(d, ignore_errors=True)
    return secs, worst, p99, n


def single_update(cluster):
    url = prepare(cluster, "bf_update")
    sql(url, "ALTER TABLE users ADD COLUMN full_name varchar(255)")

    def work():
        sql(url, "UPDATE users SET full_name = name")

    elapsed, worst, p99, n, _ = measure(url, work)
    return elapsed, worst, p99, n


def main():
    cluster = Cluster()
    try:
        rows = []
        secs, worst, p99, n = single_update(cluster)
        rows.append(("single `UPDATE users SET full_name = name`", secs, worst, p99, n))
        base = secs
        for b in BATCHES:
            secs, worst, p99, n = cutover_backfill(cluster, b)
            rows.append((f"cutover backfill, batches of {b}", secs, worst, p99, n))
        print(f"\n{ROWS:,} rows; a concurrent writer updates random rows ~200 times a second; {os.cpu_count()} cores\n")
        print("| copy | time | rows/s | vs single UPDATE | writer worst latency | writer p99 | writer statements |")
        print("|---|---|---|---|---|---|---|")
        for name, secs, worst, p99, n in rows:
            print(f"| {name} | {secs:.1f} s | {ROWS / secs:,.0f} | {base / secs * 100:.0f}% | {worst:.0f} ms | {p99:.1f} ms | {n} |")
    finally:
        cluster.stop()


if __name__ == "__main__":
    main()
