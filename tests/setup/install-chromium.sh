#!/usr/bin/env bash
# Installs Chromium (Debian's package) and a font for the test that screenshots the
# `replay --html` page headless (tests/html_timeline.rs). Does nothing when chromium is
# already there.
set -euo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
  exit 0
fi
if [ "$(id -u)" != 0 ]; then
  echo "install-chromium: chromium is missing and this is not root: install Debian's chromium" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
# Without recommends the browser comes without fonts; text in the screenshot needs one.
packages=(chromium fonts-dejavu-core)
apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null 2>&1 || {
  apt-get update >/dev/null
  apt-get install -y --no-install-recommends "${packages[@]}" >/dev/null
}
echo "install-chromium: installed $(chromium --version 2>/dev/null | head -1)"
