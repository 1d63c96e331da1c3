#!/usr/bin/env bash
# The tools that check deploy/ offline, installed if missing:
# - Debian's docker-compose, for `docker-compose config` on
#   deploy/docker/compose.yaml (no daemon needed);
# - kubernetes-validate from PyPI (pinned in requirements.txt, its own
#   venv), for deploy/k8s against the Kubernetes schemas it ships.
# Prints the two environment lines crates/mnemo/tests/deploy_files.rs reads
# (MNEMO_DOCKER_COMPOSE, MNEMO_KUBERNETES_VALIDATE); deploy/local/test.sh
# exports them.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
state="${MNEMO_STATE_DIR:-$repo/.mnemo}"
if ! command -v docker-compose >/dev/null; then
  printf '[deploy-check] installing docker-compose (Debian)\n' >&2
  sudo_if() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
  sudo_if env DEBIAN_FRONTEND=noninteractive apt-get install -y -q docker-compose >/dev/null
fi
python="$("$repo/deploy/local/pip-venv.sh" deploy-check "$state/venv-deploy-check" \
  "$here/requirements.txt" 'import kubernetes_validate')"
printf 'MNEMO_DOCKER_COMPOSE=%s\n' "$(command -v docker-compose)"
printf 'MNEMO_KUBERNETES_VALIDATE=%s\n' "$(dirname "$python")/kubernetes-validate"
