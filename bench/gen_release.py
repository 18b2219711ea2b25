#!/usr/bin/env python3
"""Generates a large release for the planner benchmark.

Writes OUT/migrations/V1..V{files} (about ten statements each, of the kinds cutover
classifies: tables, nullable columns, constant defaults, NOT VALID constraints and their
validation, comments, concurrent indexes alone in their file, column renames, and
contract-phase drops numbered last) and OUT/spec.toml with SERVICES services spread over
the four strategies' online variants.

Each file is single-phase, as the planner requires (`mixed-phase-migration`): a CHECK
constraint checks a nullable column added earlier in the same file (so new to the release for
`lint` as for `plan`), which the old version leaves NULL and so passes: an expand statement.

usage: gen_release.py OUT [files=2000] [services=50]
"""
import os
import random
import sys

out = sys.argv[1]
files = int(sys.argv[2]) if len(sys.argv) > 2 else 2000
services = int(sys.argv[3]) if len(sys.argv) > 3 else 50
rng = random.Random(7)
mig = os.path.join(out, "migrations")
os.makedirs(mig, exist_ok=True)
for f in os.listdir(mig):
    os.remove(os.path.join(mig, f))

TABLES = 40
base = []
for t in range(TABLES):
    cols = ",\n    ".join(f"c{c} text" for c in range(12))
    base.append(f"CREATE TABLE t{t} (\n    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,\n    {cols}\n);")
open(os.path.join(mig, "V1__baseline.sql"), "w").write("\n".join(base) + "\n")

statements = 0
contract_from = files - files // 20  # the last 5% are contract migrations
added = 0
pending = []
for v in range(2, files + 1):
    lines = []
    if v >= contract_from:
        t = rng.randrange(TABLES)
        lines.append("-- cutover:phase=contract")
        for _ in range(rng.randint(6, 12)):
            added += 1
            lines.append(f"ALTER TABLE t{t} DROP COLUMN IF EXISTS old{added};")
    elif v % 50 == 0:
        t = rng.randrange(TABLES)
        lines.append(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS t{t}_idx_{v} ON t{t} (c{rng.randrange(12)});")
    elif v % 97 == 0:
        t = v % TABLES
        lines.append(f"ALTER TABLE t{t} RENAME COLUMN c{v % 12} TO renamed_{v};")
    else:
        lines.append("SET lock_timeout = '2s';")
        while pending:
            t, n = pending.pop()
            lines.append(f"ALTER TABLE t{t} VALIDATE CONSTRAINT chk{n};")
        new_text = []  # (table, n) of the nullable text columns this file added
        want = len(lines) + rng.randint(7, 11)
        while len(lines) < want:
            t = rng.randrange(TABLES)
            kind = rng.randrange(6)
            added += 1
            if kind == 3 and not new_text:
                # No column of this file to check yet: add one first.
                lines.append(f"ALTER TABLE t{t} ADD COLUMN n{added} text;")
                new_text.append((t, added))
                added += 1
            if kind == 3:
                t, col = new_text[-1]
            if kind == 0:
                lines.append(f"ALTER TABLE t{t} ADD COLUMN n{added} text;")
                new_text.append((t, added))
            elif kind == 1:
                lines.append(f"ALTER TABLE t{t} ADD COLUMN flag{added} boolean NOT NULL DEFAULT false;")
            elif kind == 2:
                lines.append(f"CREATE TABLE new{added} (id bigint PRIMARY KEY, t{t}_id bigint, note text);")
            elif kind == 3:
                # Validated by the next migration: NOT VALID and VALIDATE in one transaction
                # would hold the lock the split is meant to avoid. A CHECK on an existing
                # column would be contract (it may reject the old version's writes).
                lines.append(f"ALTER TABLE t{t} ADD CONSTRAINT chk{added} CHECK (n{col} <> '') NOT VALID;")
                pending.append((t, added))
            elif kind == 4:
                lines.append(f"COMMENT ON TABLE t{t} IS 'revision {added}';")
            else:
                lines.append(f"ALTER TABLE t{t} ALTER COLUMN c{rng.randrange(12)} SET DEFAULT 'x';")
    statements += sum(1 for l in lines if not l.startswith("--"))
    open(os.path.join(mig, f"V{v}__change_{v}.sql"), "w").write("\n".join(lines) + "\n")

spec = ['[release]\nname = "bench"\n']
kinds = ["canary", "blue-green", "rolling"]
for s in range(services):
    kind = kinds[s % 3]
    spec.append(f'[[service]]\nname = "svc{s}"\nimage = "svc{s}"\ncurrent = "1"\ntarget = "2"\nport = {10000 + 6 * s}\nreplicas = 3\n')
    if kind == "canary":
        spec.append('[service.strategy]\nkind = "canary"\nsteps = [5, 25, 50, 100]\npause = "30s"\nanalysis = { max_error_rate = 0.01, max_p99_latency = "300ms" }\n')
    elif kind == "rolling":
        spec.append('[service.strategy]\nkind = "rolling"\nbatch_size = 1\ndelay = "5s"\n')
    else:
        spec.append('[service.strategy]\nkind = "blue-green"\n')
spec.append('[[database]]\nname = "main"\nurl_env = "DATABASE_URL"\nmigrations = "migrations"\nbaseline = 1\n')
spec.append('[router]\nkind = "haproxy"\nadmin_socket = "/run/haproxy/admin.sock"\n')
open(os.path.join(out, "spec.toml"), "w").write("\n".join(spec))
print(f"{files} migration files, {statements} statements, {services} services -> {out}")
