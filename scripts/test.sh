#!/usr/bin/env bash
# The whole test suite, from a fresh Debian machine with Rust:
#   bash scripts/test.sh
# Installs or checks every tool the tests need (fails loudly if one is
# missing), fetches the real model and text, then runs formatting and lint
# checks, every Rust test, and the CLI-vs-numpy oracle check.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

step() { echo; echo "==> $*"; }

step "tools"
# Verilator compiles its models with a C++ compiler and make.
source scripts/tools.sh
need_tools verilator yosys iverilog g++ make osu018 ccache
# tests/jobs.rs: Slurm (a one-node cluster on loopback) and munge, ninja.
need_tools slurmctld slurmd sbatch squeue sinfo munged ninja
# The suite builds about forty Verilator models: Verilator's own runtime
# files and every unit module generated the same way are compiled once
# (verilated.mk reads OBJCACHE from the environment).
export OBJCACHE=ccache CCACHE_DIR="$root/.cache/ccache"
# sim's Verilator models (keyed by their sources; RFC 0006) stay in the
# checkout, not in the user's home.
export TAALASC_CACHE_DIR="$root/.cache/taalasc"
verilator --version
yosys -V
python3 -c 'import numpy' 2>/dev/null || python3 -m pip install --quiet --disable-pip-version-check numpy
python3 -c 'import numpy; print("numpy", numpy.__version__)'
# tests/jobs.rs lints the FuseSoC core build writes with the real fusesoc.
command -v fusesoc >/dev/null || python3 -m pip install --quiet --disable-pip-version-check fusesoc
command -v fusesoc >/dev/null || { echo "test.sh: fusesoc is still missing after pip install fusesoc" >&2; exit 1; }
fusesoc --version
rustup component list --installed 2>/dev/null | grep -q clippy || rustup component add clippy rustfmt

step "data"
bash scripts/fetch-data.sh

step "cargo fmt --check"
cargo fmt --all -- --check

step "layering (crate dependencies point down; no module use-cycles)"
python3 scripts/check-layering.py --self-test
python3 scripts/check-layering.py

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test"
INSTA_UPDATE=no cargo test --workspace 2>&1 | tee .cache/cargo-test.log
# Fail loudly if any test was ignored: nothing is skipped silently.
if grep -E "test result: .* [1-9][0-9]* ignored" .cache/cargo-test.log; then
  echo "test.sh: some tests were ignored; every test must run" >&2
  exit 1
fi

step "CLI oracle check (taalasc run --dump-logits vs numpy)"
python3 tests/oracle/check_cli.py target/debug/taalasc

echo
echo "test.sh: all checks passed"
