#!/usr/bin/env bash
# The Quick start, end to end on the embedded default (SQLite, local binaries):
# build, start a server, bootstrap an owner token, create a scoped token,
# verify it, regenerate it and show that the old value fails, protect an API with the gateway check,
# revoke tokens in bulk, and (when terraform is installed) apply examples/terraform.
#
# It ends with the server still running and a few tokens in it, and prints how
# to look at them. `scripts/quickstart.sh --cleanup` stops that server and
# deletes everything the Quick start made.
#
# Settings: TOKENOPS_QUICKSTART_DIR (default /tmp/tokenops-quickstart) holds
# the database, the owner token, the log and the pid file;
# TOKENOPS_QUICKSTART_PORT (default 8080, another free port when it is taken).
# CARGO_TARGET_DIR is honoured.
set -euo pipefail
cd "$(dirname "$0")/.."

state="${TOKENOPS_QUICKSTART_DIR:-${TMPDIR:-/tmp}/tokenops-quickstart}"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
explain() { printf '   \033[2m%s\033[0m\n' "$*"; }

# Stops the server a previous run left (only if the pid is still that server).
stop_previous() {
  [ -f "$state/server.pid" ] || return 0
  local pid
  pid=$(cat "$state/server.pid")
  if [ -r "/proc/$pid/cmdline" ] && tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q tokenops-server; then
    kill -TERM "$pid"
    # SIGTERM lets in-flight requests finish and writes last-used dates.
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    echo "stopped the Quick start server (pid $pid)"
  fi
  rm -f "$state/server.pid"
}

if [ "${1:-}" = "--cleanup" ]; then
  stop_previous
  rm -rf "$state"
  echo "deleted $state"
  exit 0
elif [ $# -gt 0 ]; then
  echo "usage: scripts/quickstart.sh [--cleanup]" >&2
  exit 2
fi

if [ -d "$state" ]; then
  say "Removing the previous Quick start in $state"
  stop_previous
  rm -rf "$state"
fi
mkdir -p "$state"
chmod 700 "$state"

say "Building tokenops-server and the tokenops CLI (release; the first build takes a few minutes)"
cargo build --release -p tokenops-server -p tokenops-cli
# Where cargo put them: CARGO_TARGET_DIR, a configured build.target-dir, or ./target.
target_dir=$(cargo metadata --format-version 1 --no-deps |
  python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])')
bin="$target_dir/release"
export PATH="$bin:$PATH"
explain "binaries: $bin/tokenops-server and $bin/tokenops"

port="${TOKENOPS_QUICKSTART_PORT:-8080}"
if ! python3 -c "import socket,sys; s=socket.socket(); s.bind(('127.0.0.1', int(sys.argv[1])))" "$port" 2>/dev/null; then
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
export TOKENOPS_ENDPOINT="http://127.0.0.1:$port"
# The CLI reads its settings from the environment first; keep a user's config file out of this run.
export XDG_CONFIG_HOME="$state/config"
unset TOKENOPS_CONTEXT TOKENOPS_CA_CERT

say "Bootstrapping the first owner token"
(umask 077 && tokenops-server bootstrap --database "$state/tokenops.db" >"$state/owner.token")
TOKENOPS_TOKEN=$(cat "$state/owner.token")
export TOKENOPS_TOKEN
explain "bootstrap prints the value once; the script keeps it in $state/owner.token (mode 600)"
explain "and in \$TOKENOPS_TOKEN, where the CLI finds it"

say "Starting tokenops-server on $TOKENOPS_ENDPOINT"
nohup tokenops-server serve --database "$state/tokenops.db" --listen "127.0.0.1:$port" \
  >"$state/server.log" 2>&1 </dev/null &
echo $! >"$state/server.pid"
for _ in $(seq 1 100); do
  curl -fsS "$TOKENOPS_ENDPOINT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "$TOKENOPS_ENDPOINT/readyz" >/dev/null || { echo "the server did not start; see $state/server.log" >&2; exit 1; }
explain "SQLite file $state/tokenops.db, log $state/server.log"
echo "The token this shell calls with (tokenops whoami); only its masked form is ever shown again:"
tokenops whoami

say "Creating a read-only token for the monitoring team, limited to two sites"
monitoring=$(tokenops token create grafana --role read-only --lifetime 30d \
  --resource site=s-1 --resource site=s-2 --label team=monitoring)
id=$(tokenops token get grafana -o name)
explain "create prints only the new value (captured here in \$monitoring); the warning goes to stderr"
explain "its id is $id: commands take the id, or the name when only one token has it"

say "Verifying it: allowed to read usage on site s-1, refused billing:write"
tokenops verify "$monitoring" --permission usage:read --resource site=s-1
if tokenops verify "$monitoring" --permission billing:write >/dev/null; then
  echo "unexpected: a read-only token may write" >&2; exit 1
fi
explain "VALID and what the token may do; billing:write answers INSUFFICIENT_PERMISSIONS (exit 1)"

say "Regenerating it: same id, new value, new expiry; the old value stops working"
new_value=$(tokenops token regenerate grafana --lifetime 30d)
tokenops verify "$new_value" >/dev/null || { echo "unexpected: the new value does not verify" >&2; exit 1; }
echo "the new value verifies"
if tokenops verify "$monitoring" >/dev/null; then
  echo "unexpected: the old value still works" >&2; exit 1
fi
echo "the old value is rejected (with --grace-period 1h it would have kept working for an hour)"

say "Protecting an API: the check a gateway makes (GET /v1/authorize; see examples/gateway)"
sensor=$(tokenops token create sensor-reader --scope devices:read --resource device=SN-42 --lifetime 24h)
authorize() { # <device>: the status tokenops answers a gateway for GET /v1/devices/<device>
  curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $sensor" \
    -H "X-Tokenops-Permission: devices:read" -H "X-Tokenops-Resource: device=$1" \
    "$TOKENOPS_ENDPOINT/v1/authorize"
}
expect() { if [ "$2" = "$3" ]; then echo "$1: $2"; else echo "unexpected: $1 answered $2, not $3" >&2; exit 1; fi; }
expect "fresh token, its own device SN-42" "$(authorize SN-42)" 200
expect "fresh token, another device SN-43" "$(authorize SN-43)" 403
tokenops token revoke sensor-reader >/dev/null
expect "revoked token, device SN-42" "$(authorize SN-42)" 401

say "Creating two CI tokens labelled env=ci, then revoking both with one label selector"
tokenops token create deploy-bot --scope deployments:write --lifetime 24h --label env=ci >/dev/null 2>&1
tokenops token create build-bot --scope artifacts:write --lifetime 24h --label env=ci >/dev/null 2>&1
tokenops token revoke --selector env=ci
explain "revoked tokens leave the default list (tokenops token list --all shows them) and their audit stays"

if command -v terraform >/dev/null; then
  say "Terraform: building the provider and installing it into a local mirror"
  cargo build --release -p terraform-provider-tokenops
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
  mirror="$state/terraform-mirror"
  dest="$mirror/registry.terraform.io/tokenops/tokenops/$version/$(uname -s | tr '[:upper:]' '[:lower:]')_$arch"
  mkdir -p "$dest"
  cp "$bin/terraform-provider-tokenops" "$dest/terraform-provider-tokenops_v$version"
  cat >"$state/terraformrc" <<TF
provider_installation {
  filesystem_mirror {
    path    = "$mirror"
    include = ["registry.terraform.io/tokenops/*"]
  }
  direct {
    exclude = ["registry.terraform.io/tokenops/*"]
  }
}
TF
  export TF_CLI_CONFIG_FILE="$state/terraformrc"
  cp -r examples/terraform "$state/terraform"
  say "Terraform: apply examples/terraform/main.tf against this server, then plan again"
  (
    cd "$state/terraform"
    terraform init -input=false -no-color >/dev/null
    terraform apply -auto-approve -input=false -no-color |
      grep -E "^(Apply complete|tokenops_api_token\.[a-z_]+: Creation complete)"
    terraform plan -detailed-exitcode -input=false -no-color >/dev/null && echo "a second plan shows no changes"
  )
  explain "three tokens labelled managed-by=terraform; the CLI shows them, Terraform changes them"
  explain "each run also opens a short-lived 'terraform-smoke-test' token (an ephemeral resource,"
  explain "never written to state) and revokes it when the run ends: one revoked token per run"
else
  say "Terraform not found: skipping the Terraform part"
fi

say "What the server holds now (tokenops token list)"
tokenops token list

cat <<EOF

The server keeps running (pid $(cat "$state/server.pid"), log $state/server.log).
Look around from another shell:

  export PATH="$bin:\$PATH"
  export TOKENOPS_ENDPOINT=$TOKENOPS_ENDPOINT
  export TOKENOPS_TOKEN=\$(cat $state/owner.token)
  tokenops token list              # -o wide for resources, project, labels and exact dates
  tokenops token get grafana
  tokenops audit --limit 10        # newest first

The dashboard: $TOKENOPS_ENDPOINT/ui/ (sign in with the owner token in $state/owner.token)

Stop the server and delete everything:  scripts/quickstart.sh --cleanup
EOF
