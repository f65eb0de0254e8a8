#!/usr/bin/env bash
# The Quick start, end to end on the embedded default (SQLite, local binaries):
# build, start the server, bootstrap an owner token, create a scoped token,
# verify it, regenerate it and show the old value fails, protect an API with
# the gateway check, bulk-revoke, stop.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "Building tokenops-server and the tokenops CLI"
cargo build --release -q -p tokenops-server -p tokenops-cli
bin="$PWD/target/release"
export PATH="$bin:$PATH"

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
export TOKENOPS_ENDPOINT="http://127.0.0.1:$port"
cleanup() {
  if [ -n "${server_pid:-}" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

say "Bootstrapping the first owner token (printed once, captured by the script)"
TOKENOPS_TOKEN=$(tokenops-server bootstrap --database "$work/tokenops.db")
export TOKENOPS_TOKEN
echo "owner token: ${TOKENOPS_TOKEN:0:4}… (kept in \$TOKENOPS_TOKEN)"

say "Starting tokenops-server on $TOKENOPS_ENDPOINT (SQLite file $work/tokenops.db)"
tokenops-server serve --database "$work/tokenops.db" --listen "127.0.0.1:$port" 2>"$work/server.log" &
server_pid=$!
for _ in $(seq 1 100); do
  curl -fsS "$TOKENOPS_ENDPOINT/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
tokenops whoami

say "Creating a read-only token for the monitoring team, limited to two sites"
monitoring=$(tokenops token create grafana --role read-only --lifetime 720h \
  --resource site=s-1 --resource site=s-2 --label team=monitoring --label env=prod)
id=$(tokenops -o json token list --selector team=monitoring | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')

say "Verifying it (x-api-key / Bearer both work; here through POST /v1/verify)"
tokenops verify "$monitoring" --permission usage:read --resource site=s-1
if tokenops verify "$monitoring" --permission billing:write >/dev/null; then
  echo "unexpected: a read-only token may write" >&2; exit 1
else
  echo "billing:write is refused, as it should be"
fi

say "Regenerating it: same id, new value, new expiry; the old value stops working"
new_value=$(tokenops token regenerate "$id" --lifetime 720h)
tokenops verify "$new_value"
if tokenops verify "$monitoring"; then
  echo "unexpected: the old value still works" >&2; exit 1
else
  echo "the old value is rejected"
fi

say "Protecting an API: the check a gateway makes (GET /v1/authorize; see examples/gateway)"
sensor=$(tokenops token create sensor-reader --scope devices:read --resource device=SN-42 --lifetime 24h)
sensor_id=$(tokenops -o json token list --name sensor-reader | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["id"])')
authorize() { # <device>: the status tokenops answers a gateway for GET /v1/devices/<device>
  curl -s -o /dev/null -w '%{http_code}' -H "x-api-key: $sensor" \
    -H "X-Tokenops-Permission: devices:read" -H "X-Tokenops-Resource: device=$1" \
    "$TOKENOPS_ENDPOINT/v1/authorize"
}
expect() { if [ "$2" = "$3" ]; then echo "$1: $2"; else echo "unexpected: $1 answered $2, not $3" >&2; exit 1; fi; }
expect "fresh token, its own device SN-42" "$(authorize SN-42)" 200
expect "fresh token, another device SN-43" "$(authorize SN-43)" 403
tokenops token revoke "$sensor_id" >/dev/null
expect "revoked token, device SN-42" "$(authorize SN-42)" 401

say "Creating two CI tokens, then revoking everything labelled env=prod at once"
tokenops token create deploy-bot --scope deployments:write --lifetime 24h --label env=prod >/dev/null
tokenops token create build-bot --scope artifacts:write --lifetime 24h --label env=prod >/dev/null
tokenops token revoke --selector env=prod
tokenops token list

if command -v terraform >/dev/null; then
  say "Terraform: installing the provider into a local filesystem mirror"
  cargo build --release -q -p terraform-provider-tokenops
  version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
  case "$(uname -m)" in x86_64) arch=amd64 ;; aarch64|arm64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
  mirror="$work/terraform-mirror"
  dest="$mirror/registry.terraform.io/tokenops/tokenops/$version/$(uname -s | tr '[:upper:]' '[:lower:]')_$arch"
  mkdir -p "$dest"
  cp "$bin/terraform-provider-tokenops" "$dest/terraform-provider-tokenops_v$version"
  cat > "$work/terraformrc" <<TF
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
  export TF_CLI_CONFIG_FILE="$work/terraformrc"
  cp -r examples/terraform "$work/tf"
  say "Terraform: init, apply examples/terraform/main.tf against the local server, plan again, destroy"
  (
    cd "$work/tf"
    terraform init -input=false -no-color >/dev/null
    terraform apply -auto-approve -input=false -no-color | grep -E "^(Apply complete|tokenops_api_token\.[a-z_]+: Creation complete)"
    terraform plan -detailed-exitcode -input=false -no-color >/dev/null && echo "a second plan shows no changes"
    tokenops token list --selector managed-by=terraform
    terraform destroy -auto-approve -input=false -no-color | grep -E "^Destroy complete"
  )
else
  say "Terraform not found: skipping the Terraform part of the Quick start"
fi

say "Stopping the server (SIGTERM: in-flight requests finish, last-used times are written)"
kill -TERM "$server_pid"; wait "$server_pid" || true; server_pid=""
echo "done."
