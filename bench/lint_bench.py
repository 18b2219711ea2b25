#!/usr/bin/env python3
"""Lint benchmark: `cutover lint` beside squawk 2.70 on the same files, in one run.

Cases: (a) one file of 2,000 and (b) one of 8,000 `CREATE INDEX` statements, (c) the plan
benchmark's generated release of 2,000 files, (d) a corpus of migration files in the styles of
diesel, golang-migrate, Prisma, pop/fizz and pg_dump --schema-only (bench/gen_lint_corpus.py).

Each round runs cutover and squawk back to back (alternating which goes first), so both see the
same load on a shared machine; the table gives medians over the rounds. Wall time is measured
here; CPU time (user + system) comes from the kernel's rusage of the child (os.wait4); peak RSS
from `/usr/bin/time -f %M` (GNU time) when it is installed, else from that rusage (which may
then count this Python process's own size, as a child started with vfork inherits it).

squawk runs with `--reporter gcc`: one line per finding, like cutover's text output. Its default
`tty` reporter draws a code snippet per finding and its cost grows with the square of the
findings in a file (about 0.6 s for 2,000 statements and 7 s for 8,000 here); that is squawk's
reporter, not its linting, so comparing against it would flatter cutover. squawk exits 1 when it
finds something, cutover 2 on error findings: neither counts as a failure. Before timing, each
case is checked: cutover must report every file as a migration, and squawk must lint every file
(its tty summary `checked N source files`, and at least one finding per statement in the
single-file cases).

Run it with bench/lint-bench.sh. usage: lint_bench.py CUTOVER SQUAWK WORKDIR [rounds=9]
"""
import os
import re
import statistics
import subprocess
import sys
import time

cutover, squawk, work = sys.argv[1], sys.argv[2], sys.argv[3]
rounds = int(sys.argv[4]) if len(sys.argv) > 4 else 9


def sql_files(root, with_down=False):
    found = []
    for d, _, names in os.walk(root):
        for n in names:
            if n.endswith(".sql") and (with_down or not n.endswith(".down.sql")):
                found.append(os.path.join(d, n))
    return sorted(found)


GNU_TIME = "/usr/bin/time" if os.access("/usr/bin/time", os.X_OK) else None


def run(argv, capture=False):
    """Wall seconds, CPU seconds, peak RSS (KiB), exit code and (if `capture`) output of one run."""
    if GNU_TIME:
        argv = [GNU_TIME, "-f", "@rss %M"] + argv
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
    out = p.stdout.read() if capture else b""
    err = p.stderr.read().decode(errors="replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t
    code = os.waitstatus_to_exitcode(status)
    rss = ru.ru_maxrss
    if GNU_TIME:
        m = re.search(r"^@rss (\d+)$", err, re.M)
        rss = int(m.group(1)) if m else 0
        m = re.search(r"^Command exited with non-zero status (\d+)$", err, re.M)
        code = int(m.group(1)) if m else code
    return wall, ru.ru_utime + ru.ru_stime, rss, code, out.decode(errors="replace") + err


# name, what cutover lints, the files squawk lints (the same migrations: down files are read by
# cutover as undo scripts, not linted, so squawk does not get them), statements per file if one
cases = []
for letter, n in (("a", 2000), ("b", 8000)):
    d = os.path.join(work, f"index{n}")
    cases.append((f"({letter}) 1 file, {n:,} CREATE INDEX", d, sql_files(d), n))
rel = os.path.join(work, "release", "migrations")
cases.append(("(c) release, 2,000 files", rel, sql_files(rel), None))
styles = os.path.join(work, "styles")
cases.append((f"(d) 5-style corpus, {len(sql_files(styles))} files", styles, sql_files(styles), None))


def check(name, target, files, per_file):
    w, _, _, code, out = run([cutover, "lint", target], capture=True)
    m = re.search(r"^(\d+) migration\(s\)", out, re.M)
    if code not in (0, 2) or not m or int(m.group(1)) != len(files):
        sys.exit(f"{name}: cutover lint did not lint {len(files)} migrations (exit {code}):\n{out[-2000:]}")
    if per_file is None:
        # The tty reporter's summary names how many files squawk read.
        _, _, _, code, out = run([squawk] + files, capture=True)
        m = re.search(r"checked (\d+) source files?", out)
        if code not in (0, 1) or not m or int(m.group(1)) != len(files):
            sys.exit(f"{name}: squawk did not check all {len(files)} files (exit {code}):\n{out[-2000:]}")
    _, _, _, code, out = run([squawk, "--reporter", "gcc"] + files, capture=True)
    findings = out.count(": warning: ") + out.count(": error: ")
    if code not in (0, 1) or findings == 0 or (per_file and findings < per_file):
        sys.exit(f"{name}: squawk --reporter gcc reported {findings} findings (exit {code}):\n{out[-2000:]}")
    return findings


def load():
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


print(f"{os.cpu_count()} cores; load average before: {load()}; {rounds} rounds per case; "
      f"peak RSS from {'GNU time' if GNU_TIME else 'rusage'}")
rows = []
for name, target, files, per_file in cases:
    found = check(name, target, files, per_file)
    c_argv = [cutover, "lint", target]
    s_argv = [squawk, "--reporter", "gcc"] + files
    run(c_argv), run(s_argv)  # warm the page cache
    c, s = [], []
    for r in range(rounds):
        if r % 2 == 0:
            c.append(run(c_argv)), s.append(run(s_argv))
        else:
            s.append(run(s_argv)), c.append(run(c_argv))
    for label, runs in (("cutover", c), ("squawk", s)):
        bad = [x[3] for x in runs if x[3] not in ((0, 2) if label == "cutover" else (0, 1))]
        if bad:
            sys.exit(f"{name}: {label} failed with exit code {bad[0]}")
    med = lambda runs, k: statistics.median(x[k] for x in runs)  # noqa: E731
    rows.append({
        "case": name, "files": len(files), "squawk_findings": found,
        "c": med(c, 0), "s": med(s, 0), "c_cpu": med(c, 1), "s_cpu": med(s, 1),
        "c_rss": max(x[2] for x in c) / 1024, "s_rss": max(x[2] for x in s) / 1024,
    })
    print(f"  done: {name}", file=sys.stderr)

print(f"load average after: {load()}\n")
print("| case | cutover s | squawk s | ratio (cutover/squawk) | cutover CPU s | squawk CPU s | RSS cutover / squawk |")
print("|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r['case']} | {r['c']:.3f} | {r['s']:.3f} | {r['c'] / r['s']:.2f} | {r['c_cpu']:.3f} | "
          f"{r['s_cpu']:.3f} | {r['c_rss']:.0f} / {r['s_rss']:.0f} MiB |")
a, b = rows[0], rows[1]
print(f"\nscaling from 2,000 to 8,000 statements in one file (linear is 4x): "
      f"cutover {b['c'] / a['c']:.1f}x wall, {b['c_cpu'] / a['c_cpu']:.1f}x CPU; "
      f"squawk {b['s'] / a['s']:.1f}x wall, {b['s_cpu'] / a['s_cpu']:.1f}x CPU")
missed = [r["case"] for r in rows if r["c"] > r["s"]]
print("target (cutover no slower than squawk, median wall): "
      + ("met on every case" if not missed else "MISSED on " + "; ".join(missed)))
