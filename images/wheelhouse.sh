#!/usr/bin/env bash
# A wheelhouse for the appliance: the project's wheel built from this checkout (tracked and untracked files, not
# ignored ones) and every dependency as a wheel for the target (CPython 3.11, manylinux aarch64 by default), so the
# target installs with `pip install --no-index --find-links` — no compiler, no index, same pins as pyproject.toml.
# Dependencies are cached under $QMS_IMAGE_CACHE keyed by a hash of pyproject.toml and the platform.
#
# usage: images/wheelhouse.sh OUTDIR [PLATFORM_ARCH]      (PLATFORM_ARCH: aarch64 (default) or x86_64)
# prints: the project wheel's file name
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="$1"
arch="${2:-aarch64}"
cache="${QMS_IMAGE_CACHE:-/var/cache/qms-image}"
py="${PYTHON:-$repo/.venv/bin/python}"
[ -x "$py" ] || py=python3
mkdir -p "$out" "$cache"

# 1. the project's wheel, built from a copy (pip would otherwise write build/ and egg-info into the shared checkout)
src="$(mktemp -d)"
trap 'rm -rf "$src"' EXIT
(cd "$repo" && git ls-files -co --exclude-standard -z | xargs -0 cp --parents -t "$src" 2>/dev/null || true)
"$py" -m pip wheel -q --no-deps -w "$src/dist" "$src" >&2
wheel="$(basename "$(ls "$src"/dist/*.whl)")"
cp "$src/dist/$wheel" "$out/"

# 2. the dependencies, pinned by a resolution against pyproject.toml, as wheels for the target platform
# keyed by the runtime dependencies only (not the test extra, tool settings or the version)
key="$( { "$py" -c 'import sys, tomllib; print(tomllib.load(open(sys.argv[1], "rb"))["project"]["dependencies"])' \
  "$repo/pyproject.toml"; echo "$arch"; } | sha256sum | cut -c1-16)"
deps="$cache/wheels-$arch-$key"
if [ ! -e "$deps/.complete" ]; then
  rm -rf "$deps" && mkdir -p "$deps"
  "$py" -m pip install -q --dry-run --ignore-installed --report "$deps/report.json" "$src/dist/$wheel" >&2
  "$py" - "$deps/report.json" > "$deps/pins.txt" <<'PY'
import json, sys
for item in json.load(open(sys.argv[1]))["install"]:
    meta = item["metadata"]
    if meta["name"] != "qms":
        print(f"{meta['name']}=={meta['version']}")
PY
  platforms=()
  for p in manylinux2014 manylinux_2_17 manylinux_2_28 manylinux_2_34 linux; do platforms+=(--platform "${p}_$arch"); done
  while read -r pin; do
    if ! "$py" -m pip download -q --no-deps -d "$deps" --only-binary=:all: "${platforms[@]}" \
        --python-version 3.11 --implementation cp --abi cp311 --abi abi3 --abi none "$pin" >/dev/null 2>&1; then
      # No wheel for the target: only a pure-Python sdist may be built here (the result must be py3-none-any).
      "$py" -m pip wheel -q --no-deps -w "$deps" "$pin" >&2
    fi
  done < "$deps/pins.txt"
  if ls "$deps"/*.whl | grep -E -- '-(linux|manylinux[^-]*)_x86_64\.whl$' | grep -v "$arch" >&2; then
    [ "$arch" = x86_64 ] || { echo "a dependency built for the wrong platform (above)" >&2; exit 1; }
  fi
  touch "$deps/.complete"
fi
# Top up (a dependency added since the cache was made): resolve the project's wheel against the cache first.
platforms=()
for p in manylinux2014 manylinux_2_17 manylinux_2_28 manylinux_2_34 linux; do platforms+=(--platform "${p}_$arch"); done
"$py" -m pip download -q -d "$deps" --find-links "$deps" --only-binary=:all: "${platforms[@]}" --python-version 3.11 \
  --implementation cp --abi cp311 --abi abi3 --abi none "$src/dist/$wheel" >&2 || {
  # a new pure-Python sdist-only dependency: build it here, then try again
  "$py" -m pip wheel -q -w "$deps" --find-links "$deps" "$src/dist/$wheel" >&2
  rm -f "$deps"/*x86_64*.whl "$deps/$wheel"
}
rm -f "$deps/$wheel"
cp "$deps"/*.whl "$out/"
echo "$wheel"
