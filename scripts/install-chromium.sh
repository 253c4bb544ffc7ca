#!/usr/bin/env bash
# Installs Debian's chromium, the headless browser the HTML report's test
# renders pages in. Needs apt-get, and root or sudo.
set -euo pipefail
command -v chromium >/dev/null && exit 0
as_root=()
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "install-chromium: need root or sudo for apt-get" >&2; exit 1; }
  as_root=(sudo)
fi
export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" apt-get install -y --no-install-recommends chromium >/dev/null 2>&1 || {
  "${as_root[@]}" apt-get update >/dev/null
  "${as_root[@]}" apt-get install -y --no-install-recommends chromium >/dev/null
}
command -v chromium >/dev/null
