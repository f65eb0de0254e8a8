#!/usr/bin/env bash
# Builds the three container images — tokenops-server, tokenops-operator and
# the CLI (tokenops-cli) — from the Containerfile at the repository root, and
# writes each as an OCI archive under target/images/.
#
#   scripts/images.sh                       # binaries, contexts, images, archives
#   IMAGE_TOOL=buildah scripts/images.sh    # podman (default), buildah or docker
#
# Nothing is pulled from a registry: every image is `FROM scratch` plus one
# root filesystem this script assembles from the build machine — the release
# binary, exactly the shared libraries `ldd` shows it links, the CA
# certificates, /etc/passwd and /etc/group with the user 65532, and (server)
# the data directory /var/lib/tokenops owned by 65532. See docs/images.md.
#
# Names and tag come from the charts: image.repository in
# charts/<chart>/values.yaml, tag = the charts' appVersion.
#
# Environment:
#   CARGO_TARGET_DIR   honoured (images land in $CARGO_TARGET_DIR/images)
#   IMAGE_PROFILE      cargo profile of the binaries (default: image)
#   IMAGE_BIN_DIR      take the three binaries from here instead of building
#   IMAGE_TOOL         podman | buildah | docker (default: the first found)
#   SOURCE_DATE_EPOCH  timestamp of every file and of the image (default:
#                      the last commit's time, so a rebuild is bit-identical)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target_dir="${CARGO_TARGET_DIR:-$root/target}"
case "$target_dir" in /*) ;; *) target_dir="$PWD/$target_dir" ;; esac
profile="${IMAGE_PROFILE:-image}"
out="$target_dir/images"
user_id=65532

# The time of every file and of the images. Not exported: the `cc` crate's
# build scripts (ring, SQLite) rerun when SOURCE_DATE_EPOCH changes, so cargo
# would rebuild half the tree at every commit.
epoch="${SOURCE_DATE_EPOCH:-$(git -C "$root" log -1 --format=%ct 2>/dev/null || true)}"
epoch="${epoch:-0}"

die() { echo "images.sh: $*" >&2; exit 1; }

# --- names and tag, from the charts -----------------------------------------
chart_value() { # file key → the first top-level-or-indented `key: value`
  sed -n "s/^ *$2: *\"\{0,1\}\([^\"]*\)\"\{0,1\} *$/\1/p" "$1" | head -n1
}
tag="$(chart_value "$root/charts/tokenops-server/Chart.yaml" appVersion)"
operator_tag="$(chart_value "$root/charts/tokenops-operator/Chart.yaml" appVersion)"
[[ -n "$tag" && "$tag" == "$operator_tag" ]] \
  || die "the charts' appVersion differ ($tag, $operator_tag): one tag for all images"
server_repo="$(chart_value "$root/charts/tokenops-server/values.yaml" repository)"
operator_repo="$(chart_value "$root/charts/tokenops-operator/values.yaml" repository)"
cli_repo="${server_repo%/*}/tokenops-cli"

# image name | Containerfile target | binary
images=(
  "$server_repo|tokenops-server|tokenops-server"
  "$operator_repo|tokenops-operator|tokenops-operator"
  "$cli_repo|tokenops-cli|tokenops"
)

# --- the engine ---------------------------------------------------------------
tool="${IMAGE_TOOL:-}"
if [[ -z "$tool" ]]; then
  for candidate in podman buildah docker; do
    if command -v "$candidate" >/dev/null 2>&1; then
      # A docker CLI without a daemon cannot build.
      if [[ "$candidate" == docker ]] && ! docker info >/dev/null 2>&1; then continue; fi
      tool="$candidate"
      break
    fi
  done
fi
[[ -n "$tool" ]] || die "no podman, buildah or docker (with a daemon) found"

# The project's containers.conf with this machine's hard limits filled in, for
# running the images with podman (the image test uses it; see the file).
write_containers_conf() {
  local nofile nproc
  nofile="$(ulimit -Hn)"; nproc="$(ulimit -Hu)"
  [[ "$nofile" == unlimited ]] && nofile=1048576
  if [[ "$nproc" == unlimited ]] || (( nproc > 32768 )); then nproc=32768; fi
  sed -e "s/@NOFILE@/$nofile/g" -e "s/@NPROC@/$nproc/g" \
    "$root/testing/containers/containers.conf" >"$out/containers.conf"
}

# --- binaries -----------------------------------------------------------------
if [[ -n "${IMAGE_BIN_DIR:-}" ]]; then
  bin_dir="$IMAGE_BIN_DIR"
else
  echo "== cargo build --profile $profile (tokenops-server, tokenops-operator, tokenops)"
  (cd "$root" && cargo build --profile "$profile" \
    -p tokenops-server -p tokenops-operator -p tokenops-cli \
    --bin tokenops-server --bin tokenops-operator --bin tokenops)
  bin_dir="$target_dir/$profile"
  if [[ "$profile" == dev ]]; then bin_dir="$target_dir/debug"; fi
fi

mkdir -p "$out"
write_containers_conf

# --- one root filesystem per image ---------------------------------------------
# Prints the absolute paths of the shared objects a binary loads (the program
# interpreter included), or nothing for a static binary.
linked_libraries() {
  local binary="$1" line
  if ! ldd "$binary" >/dev/null 2>&1; then return 0; fi # "not a dynamic executable"
  ldd "$binary" | while read -r line; do
    case "$line" in
      *"not found"*) die "$binary: a library is missing: $line" ;;
      *" => /"*) line="${line#* => }"; echo "${line%% (*}" ;;
      /*) echo "${line%% (*}" ;;
      *) ;; # linux-vdso: provided by the kernel
    esac
  done
}

# stage_rootfs <dir> <binary> <with data dir: yes|no>
stage_rootfs() {
  local context="$1" binary="$2" data="$3" rootfs="$1/rootfs" lib
  rm -rf "$context" && mkdir -p "$rootfs"
  mkdir -p "$rootfs/usr/local/bin" "$rootfs/etc/ssl/certs" "$rootfs/tmp"
  cp "$binary" "$rootfs/usr/local/bin/"
  local libs
  libs="$(linked_libraries "$binary")"
  for lib in $libs; do
    mkdir -p "$rootfs$(dirname "$lib")"
    cp -L "$lib" "$rootfs$lib" # the file itself, wherever a symlink points
  done
  [[ -f /etc/ssl/certs/ca-certificates.crt ]] \
    || die "/etc/ssl/certs/ca-certificates.crt missing (install ca-certificates)"
  cp -L /etc/ssl/certs/ca-certificates.crt "$rootfs/etc/ssl/certs/"
  printf '%s\n' \
    "root:x:0:0:root:/root:/sbin/nologin" \
    "tokenops:x:$user_id:$user_id:tokenops:/nonexistent:/sbin/nologin" >"$rootfs/etc/passwd"
  printf '%s\n' "root:x:0:" "tokenops:x:$user_id:" >"$rootfs/etc/group"
  # Names: /etc/hosts first, then DNS (the container network's resolver).
  printf '%s\n' "hosts: files dns" >"$rootfs/etc/nsswitch.conf"
  [[ "$data" == yes ]] && mkdir -p "$rootfs/var/lib/tokenops"

  # Normalise: modes, then one timestamp for everything.
  find "$rootfs" -type d -exec chmod 0755 {} +
  find "$rootfs" -type f -exec chmod 0644 {} +
  chmod 0755 "$rootfs/usr/local/bin/"*
  find "$rootfs" -type f -name 'ld-linux*' -exec chmod 0755 {} +
  chmod 1777 "$rootfs/tmp"
  [[ "$data" == yes ]] && chmod 0750 "$rootfs/var/lib/tokenops"
  find "$rootfs" -exec touch -h -d "@$epoch" {} +

  # One tar, sorted, owned by root — except the data directory, owned by the
  # image's user. `ADD` extracts it keeping owners, modes and times, the
  # same way in podman, buildah and docker.
  local tar_common=(--sort=name --format=gnu --numeric-owner --mtime="@$epoch")
  tar "${tar_common[@]}" --owner=0 --group=0 --exclude=./var/lib/tokenops \
    -C "$rootfs" -cf "$context/rootfs.tar" .
  if [[ "$data" == yes ]]; then
    tar "${tar_common[@]}" --owner="$user_id" --group="$user_id" --no-recursion \
      -C "$rootfs" -rf "$context/rootfs.tar" ./var/lib/tokenops
  fi
  touch -d "@$epoch" "$context/rootfs.tar"
}

# --- images -------------------------------------------------------------------
# Packs an OCI layout directory into an archive that is the same bytes for
# the same image (the engines' own archives carry the time of saving).
pack_layout() { # layout-dir archive
  tar --sort=name --format=gnu --numeric-owner --owner=0 --group=0 \
    --mtime="@$epoch" --mode=u+rw,go+r,go-w -C "$1" -cf "$2" .
}

build_image() { # ref target context archive
  local ref="$1" target="$2" context="$3" archive="$4" layout="$3/oci"
  local args=(-f "$root/Containerfile" --target "$target" --build-arg "VERSION=$tag" -t "$ref")
  rm -rf "$archive" "$layout"
  case "$tool" in
    podman)
      # --layers=false: no intermediate images in the history, so podman and
      # buildah write the same image, byte for byte.
      podman build --quiet --layers=false --timestamp "$epoch" "${args[@]}" "$context" >/dev/null
      podman save --quiet --format oci-dir -o "$layout" "$ref"
      ;;
    buildah)
      buildah build --quiet --timestamp "$epoch" "${args[@]}" "$context" >/dev/null
      buildah push --quiet "$ref" "oci:$layout:$ref"
      ;;
    docker)
      # BuildKit: SOURCE_DATE_EPOCH as a build argument fixes the image's
      # times, rewrite-timestamp the files'. Not run in this project's CI.
      docker buildx build --build-arg "SOURCE_DATE_EPOCH=$epoch" "${args[@]}" \
        --output "type=oci,tar=false,dest=$layout,name=$ref,rewrite-timestamp=true" "$context"
      docker buildx build --build-arg "SOURCE_DATE_EPOCH=$epoch" "${args[@]}" \
        --load "$context" >/dev/null
      ;;
    *) die "IMAGE_TOOL=$tool: use podman, buildah or docker" ;;
  esac
  pack_layout "$layout" "$archive"
}

# "<uncompressed size in bytes> <image id>" of the image in an OCI layout: the
# layers' unpacked size and the config's digest, the same for every engine.
layout_facts() { # layout-dir
  python3 - "$1" <<'PY'
import gzip, json, os, sys
layout = sys.argv[1]
def blob(digest):
    return os.path.join(layout, "blobs", *digest.split(":"))
index = json.load(open(os.path.join(layout, "index.json")))
manifest = json.load(open(blob(index["manifests"][0]["digest"])))
size = 0
for layer in manifest["layers"]:
    data = open(blob(layer["digest"]), "rb").read()
    size += len(gzip.decompress(data)) if data[:2] == b"\x1f\x8b" else len(data)
print(size, manifest["config"]["digest"].split(":")[1])
PY
}

echo "== images ($tool, tag $tag, SOURCE_DATE_EPOCH=$epoch)"
summary=()
for entry in "${images[@]}"; do
  IFS='|' read -r repo target binary <<<"$entry"
  data=no
  [[ "$target" == tokenops-server ]] && data=yes
  context="$out/context/$target"
  archive="$out/$target.oci.tar"
  stage_rootfs "$context" "$bin_dir/$binary" "$data"
  build_image "$repo:$tag" "$target" "$context" "$archive"
  read -r size id <<<"$(layout_facts "$context/oci")"
  summary+=("$(printf '%-42s %7.1f MB  %-12.12s  %s' "$repo:$tag" \
    "$(awk -v b="$size" 'BEGIN { print b / 1e6 }')" "${id#sha256:}" "${archive#"$root"/}")")
done
printf '%-42s %10s  %-12s  %s\n' "image" "size" "id" "archive"
printf '%s\n' "${summary[@]}"
