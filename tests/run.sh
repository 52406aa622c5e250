#!/usr/bin/env bash
# Runs every test of Địa bàn: formatting, clippy, Rust unit and integration tests, the
# generated bindings, and the end-to-end tests (real server processes, the Python binding,
# headless Chromium). Installs what a fresh machine lacks: a Python venv with pytest and
# Playwright, and Debian's Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step() { printf '\n==> [%4ds] %s\n' "$((SECONDS - started))" "$*"; }
missing() { printf 'MISSING: %s\n' "$*" >&2; exit 1; }

command -v cargo >/dev/null || missing "the Rust toolchain (cargo); install it with rustup"
command -v python3 >/dev/null || missing "Python 3 (python3)"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy (all targets, warnings are errors)"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "PostgreSQL test cluster (tests/pg.sh, loopback, stopped at exit)"
pgdir=$(mktemp -d /tmp/diaban-pg.XXXXXX)
chmod 755 "$pgdir"
pgport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
trap 'bash tests/pg.sh stop "$pgdir" || true; rm -rf "$pgdir"' EXIT
DIABAN_TEST_PG=$(bash tests/pg.sh start "$pgdir" "$pgport")
export DIABAN_TEST_PG

step "The attacker's client (npm @automerge/automerge, for server/tests/attacks.rs)"
command -v node >/dev/null && command -v npm >/dev/null || missing "Node.js and npm"
if ! cmp -s tests/attacks/package-lock.json tests/attacks/node_modules/.installed-lock.json; then
  npm ci --prefix tests/attacks --no-audit --no-fund --silent
  cp tests/attacks/package-lock.json tests/attacks/node_modules/.installed-lock.json
fi

step "Rust unit and integration tests (SQLite; scale-out on PostgreSQL)"
cargo test --workspace --quiet

step "The server's sync tests again, on PostgreSQL"
DIABAN_TEST_BACKEND=postgres cargo test -p diaban-server --quiet \
  --test sync_authorization --test sync_faults --test sync_bytes --test sync_scope --test reports --test attacks --test limits

step "Generated bindings (Python, Kotlin, Swift)"
bash bindings/generate.sh

step "Python environment (tests/.venv)"
venv=tests/.venv
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv" || missing "python3-venv (apt-get install python3-venv)"
fi
if ! cmp -s tests/requirements.txt "$venv/.requirements"; then
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/requirements.txt
  cp tests/requirements.txt "$venv/.requirements"
fi

step "Python binding, installed with pip from bindings/python"
DIABAN_BINDINGS_DIR="$PWD/target/bindings/python" "$venv/bin/pip" install --quiet --disable-pip-version-check \
  --force-reinstall --no-deps ./bindings/python

step "Kotlin binding on the JVM (Maven: kotlin-maven-plugin, JNA, JUnit 5)"
if ! command -v mvn >/dev/null || ! command -v javac >/dev/null; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q maven default-jdk-headless >/dev/null
  else
    missing "a JDK and Maven: run 'sudo apt-get install maven default-jdk-headless'"
  fi
fi
mvn -B -q -f bindings/kotlin/pom.xml test

step "Chromium for browser tests"
chromium="${CHROMIUM:-/usr/bin/chromium}"
if [ ! -x "$chromium" ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q chromium >/dev/null
  else
    missing "Chromium at $chromium: run 'sudo apt-get install chromium' or set CHROMIUM=/path/to/chromium"
  fi
fi
export CHROMIUM="$chromium"

step "End-to-end tests (server processes, Python binding, Chromium)"
"$venv/bin/python" -m pytest tests/e2e -q -p no:cacheprovider

step "The demo and the grid on pinned dates (DIABAN_CLOCK, tests/pinned-dates.txt), two at a time"
pinned_logs=$(mktemp -d /tmp/diaban-pinned.XXXXXX)
pinned() {
  DIABAN_CLOCK=$1 "$venv/bin/python" -m pytest tests/e2e/test_demo.py tests/e2e/test_grid.py -q -p no:cacheprovider \
    >"$pinned_logs/$1.log" 2>&1
}
failed=()
mapfile -t dates < <(sed 's/#.*//' tests/pinned-dates.txt | tr -s ' \t' '\n' | grep .)
for ((i = 0; i < ${#dates[@]}; i += 2)); do
  pids=()
  for d in "${dates[@]:i:2}"; do pinned "$d" & pids+=("$!:$d"); done
  for p in "${pids[@]}"; do wait "${p%%:*}" || failed+=("${p#*:}"); done
done
for d in "${failed[@]}"; do printf '\n--- failed on %s ---\n' "$d"; cat "$pinned_logs/$d.log"; done
rm -rf "$pinned_logs"
[ ${#failed[@]} -eq 0 ] || { echo "date-sensitive tests failed on: ${failed[*]}" >&2; exit 1; }
echo "passed on ${#dates[@]} pinned dates"
