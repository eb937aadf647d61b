#!/usr/bin/env bash
# Brings a fresh machine to where the demo and the tests run: RabbitMQ and Redis up, Debian's
# Python Celery (the real worker) installed, node modules installed from the lockfile.
# Idempotent; safe to run again.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."
export DEBIAN_FRONTEND=noninteractive

PYTHON=/usr/bin/python3
PYTHON_PACKAGES=(python3-celery python3-msgpack python3-yaml python3-redis python3-boto3 python3-pycurl)

log() { printf '==> %s\n' "$*" >&2; }
die() { printf 'ci: %s\n' "$*" >&2; exit 1; }

port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

wait_for_port() { # name port seconds
  local name=$1 port=$2 deadline=$((SECONDS + $3))
  until port_open "$port"; do
    ((SECONDS < deadline)) || die "$name did not come up on 127.0.0.1:$port within $3 s"
    sleep 1
  done
  log "$name is up on 127.0.0.1:$port"
}

ensure_rabbitmq() {
  if port_open 5672; then log "RabbitMQ already up"; return; fi
  command -v rabbitmq-server >/dev/null || die "rabbitmq-server is not installed"
  log "starting RabbitMQ"
  rabbitmq-server -detached
  wait_for_port RabbitMQ 5672 180
}

ensure_redis() {
  if port_open 6379; then log "Redis already up"; return; fi
  command -v redis-server >/dev/null || die "redis-server is not installed"
  log "starting Redis"
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no \
    --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_for_port Redis 6379 30
}

all_installed() {
  local status
  status=$(dpkg -s "${PYTHON_PACKAGES[@]}" 2>/dev/null | grep '^Status:' || true)
  [[ $(grep -c 'install ok installed' <<<"$status") -eq ${#PYTHON_PACKAGES[@]} ]]
}

have_apt_lists() {
  find /var/lib/apt/lists -maxdepth 1 -name '*_Packages*' -print -quit 2>/dev/null | grep -q .
}

apt_install() {
  apt-get -o DPkg::Lock::Timeout=600 install -y "${PYTHON_PACKAGES[@]}"
}

ensure_python_celery() {
  if all_installed; then
    log "${PYTHON_PACKAGES[*]} already installed"
  else
    log "installing ${PYTHON_PACKAGES[*]}"
    have_apt_lists || apt-get -o DPkg::Lock::Timeout=600 update
    # Stale package lists point at files the mirror no longer has: refresh once and retry.
    apt_install || { apt-get -o DPkg::Lock::Timeout=600 update && apt_install; }
  fi
  "$PYTHON" -c 'import celery, redis, msgpack, yaml, boto3, pycurl' || die "$PYTHON cannot import celery, redis, msgpack, yaml, boto3, pycurl"
}


ensure_rabbitmq
ensure_redis
ensure_python_celery

if [[ ! -d node_modules ]] || [[ package-lock.json -nt node_modules/.package-lock.json ]] || [[ ${CI:-} == true ]]; then
  log "npm ci"
  npm ci --no-audit --no-fund
fi
