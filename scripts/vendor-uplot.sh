#!/usr/bin/env bash
# Re-fetches the dashboard's chart library from the npm registry at the
# pinned version and checks it against the files compiled into the binary
# (api/assets/vendor/). Nothing is fetched at build or run time.
set -euo pipefail
cd "$(dirname "$0")/.."
version=1.6.32
dir=api/assets/vendor/uplot-$version
work=$(mktemp -d)
(cd "$work" && npm pack "uplot@$version" >/dev/null && tar xzf "uplot-$version.tgz")
for f in uPlot.iife.min.js uPlot.min.css; do
  cmp "$work/package/dist/$f" "$dir/$f" && echo "$f matches uplot@$version"
done
rm -rf "$work"
