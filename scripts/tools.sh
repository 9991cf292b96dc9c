#!/usr/bin/env bash
# Installs (as root, with apt-get) or checks the Debian packages that provide
# the given commands; fails loudly when one is missing and cannot be
# installed. Sourced by scripts/example.sh and scripts/test.sh:
#   need_tools verilator g++ make
need_tools() {
  local missing=() cmd pkg
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null && continue
    case "$cmd" in
      g++) pkg=g++ ;;
      *) pkg=$cmd ;;
    esac
    missing+=("$pkg")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "${0##*/}: missing ${missing[*]}; install with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  echo "${0##*/}: installing ${missing[*]} with apt-get" >&2
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  for cmd in "$@"; do
    command -v "$cmd" >/dev/null || { echo "${0##*/}: $cmd is still missing after apt-get" >&2; exit 1; }
  done
}
