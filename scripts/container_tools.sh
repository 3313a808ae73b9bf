#!/usr/bin/env bash
# The tools `make test-container` builds and runs the image with (Debian's packages): installed when missing, so a
# fresh machine (and CI, as root) needs no manual step. Idempotent.
set -euo pipefail
missing=()
for tool in podman buildah debootstrap runc; do
  command -v "$tool" >/dev/null || missing+=("$tool")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "container_tools: ${missing[*]} missing; install them as root: apt-get install -y podman buildah debootstrap runc" >&2
  exit 1
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq podman buildah debootstrap runc >/dev/null
