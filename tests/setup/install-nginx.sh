#!/usr/bin/env bash
# Installs nginx (Debian's nginx-light) for the tests that put it in front of wsgilab, without
# starting the system's nginx service. Does nothing when nginx is already there.
set -euo pipefail
if command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-nginx: nginx is missing and this is not root: install Debian's nginx-light" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Keep the package's post-install from starting a system nginx on port 80.
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' > "$policy"
  chmod +x "$policy"
  made_policy=1
fi
trap '[ "$made_policy" = 1 ] && rm -f "$policy"' EXIT
apt-get install -y --no-install-recommends nginx-light >/dev/null 2>&1 || {
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends nginx-light >/dev/null
}
echo "install-nginx: installed $(/usr/sbin/nginx -v 2>&1)"
