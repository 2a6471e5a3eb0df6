# Shared by the scripts: install Debian packages only when they are missing, quietly, and run
# `apt-get update` at most once per script (and only when something is missing).
# shellcheck shell=bash

qwen3vl_sudo() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

qwen3vl_missing_packages() {
  local p
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q ' installed$' || echo "$p"
  done
}

qwen3vl_apt_update_once() {
  if [ -z "${QWEN3VL_APT_UPDATED:-}" ]; then
    qwen3vl_sudo apt-get update -qq
    QWEN3VL_APT_UPDATED=1
  fi
}

# qwen3vl_apt_install <package>...: installs the missing ones (no recommends).
qwen3vl_apt_install() {
  local missing
  missing=$(qwen3vl_missing_packages "$@")
  [ -z "$missing" ] && return 0
  echo "qwen3vl: installing" $missing
  qwen3vl_apt_update_once
  # shellcheck disable=SC2086  # one word per package
  qwen3vl_sudo env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends $missing >/dev/null
}
