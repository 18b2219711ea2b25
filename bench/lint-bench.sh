#!/usr/bin/env bash
# Lint benchmark (issue: `cutover lint` linear in the findings of a file, and no slower than
# squawk): times `cutover lint` and squawk 2.70 on the same files in one run and prints a
# Markdown table for the README. Not a test.
#
# squawk comes from PyPI (`squawk-cli==2.70.0`, the version cutover embeds), installed when
# missing into a virtualenv under target/ (target/squawk-venv), never into the system Python.
# SQUAWK_WHEELS=DIR installs from wheels in DIR instead of the index (offline machines). Inputs
# are generated into bench/out/lint. RUNS sets the rounds per case (default 9).
set -euo pipefail
cd "$(dirname "$0")/.."
out=bench/out/lint
venv=target/squawk-venv
squawk=$venv/bin/squawk
want=2.70.0
mkdir -p "$out"
# The shipped build (profile `dist`: fat LTO, one codegen unit), as squawk's wheel is its release.
cargo build --profile dist --quiet --ignore-rust-version -p cutover
if ! "$squawk" --version 2>/dev/null | grep -qx "squawk $want"; then
  echo "installing squawk-cli==$want into $venv" >&2
  python3 -m venv "$venv" || { echo "error: cannot create a virtualenv at $venv (python3 -m venv)" >&2; exit 1; }
  if [ -n "${SQUAWK_WHEELS:-}" ]; then
    "$venv/bin/pip" install --quiet --no-index --find-links "$SQUAWK_WHEELS" "squawk-cli==$want"
  else
    "$venv/bin/pip" install --quiet "squawk-cli==$want"
  fi || { echo "error: pip could not install squawk-cli==$want into $venv" >&2; exit 1; }
  "$squawk" --version | grep -qx "squawk $want" \
    || { echo "error: $squawk is not squawk $want: $("$squawk" --version 2>&1)" >&2; exit 1; }
fi
python3 bench/gen_lint_corpus.py "$out" "${FILES:-320}"
python3 bench/gen_release.py "$out/release" 2000 50
python3 bench/lint_bench.py target/dist/cutover "$squawk" "$out" "${RUNS:-9}"
