#!/usr/bin/env bash
# Installs HAProxy when it is missing: tests/haproxy.rs runs a real one in front of Ferry (the
# PROXY protocol, `proxy_from`) and fails, saying so, without it. `.ci/run` calls this; so can
# a developer (as root, on Debian or Ubuntu).
set -euo pipefail
if ! command -v haproxy >/dev/null 2>&1 && [ ! -x /usr/sbin/haproxy ]; then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq haproxy
fi
