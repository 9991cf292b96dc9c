#!/usr/bin/env bash
# Installs (as root, with apt-get) or checks the Debian packages that provide
# the given commands; fails loudly when one is missing and cannot be
# installed. Sourced by scripts/example.sh and scripts/test.sh:
#   need_tools verilator g++ make
# `osu018` is not a command but the OSU 0.18 um Liberty file that
# `taalasc synth --liberty` tests and scripts/synth-units.sh map onto.
OSU018_LIB=/usr/share/qflow/tech/osu018/osu018_stdcells.lib
have_tool() {
  case "$1" in
    osu018) [ -r "$OSU018_LIB" ] ;;
    *) command -v "$1" >/dev/null ;;
  esac
}
need_tools() {
  local missing=() cmd pkg
  for cmd in "$@"; do
    have_tool "$cmd" && continue
    case "$cmd" in
      g++) pkg=g++ ;;
      osu018) pkg=qflow-tech-osu018 ;;
      # tests/jobs.rs runs a one-node Slurm cluster and ninja.
      slurmctld|slurmd|sbatch|squeue|sinfo) pkg=slurm-wlm ;;
      munged) pkg=munge ;;
      ninja) pkg=ninja-build ;;
      *) pkg=$cmd ;;
    esac
    [[ " ${missing[*]} " == *" $pkg "* ]] || missing+=("$pkg")
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
    have_tool "$cmd" || { echo "${0##*/}: $cmd is still missing after apt-get" >&2; exit 1; }
  done
}
