#!/usr/bin/env bash
# Writes build/aap-VERSION.tar.gz: every file git tracks, as it is in the working tree (so a
# change not yet committed is in it too), under aap-VERSION/, with fixed owners and times
# (the last commit's) so the same tree gives the same bytes; and beside it the two rockspecs
# (rockspec/aap-VERSION-1.rockspec, rockspec/aap-sim-VERSION-1.rockspec) with the tarball's
# absolute file:// URL and its MD5, which `luarocks pack` and `luarocks build` fetch from any
# directory (the checked-in URL is relative to the checkout, where only `luarocks make` runs).
# Prints the tarball's path.
set -euo pipefail
cd "$(dirname "$0")/.."
version=$(sed -n 's/.*AAP_VERSION="\([^"]*\)".*/\1/p' CMakeLists.txt)
[ -n "$version" ] || { echo "dist: no AAP_VERSION in CMakeLists.txt" >&2; exit 1; }
git rev-parse --is-inside-work-tree >/dev/null 2>&1 ||
  { echo "dist: not a git checkout (the file list comes from git ls-files)" >&2; exit 1; }
name=aap-$version
mkdir -p build
out=build/$name.tar.gz
when=$(git log -1 --format=%ct 2>/dev/null || echo 0)
# Tracked files deleted in the working tree are left out.
git ls-files -z | while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
  tar --null -T - --sort=name --transform="s#^#$name/#" --owner=0 --group=0 --numeric-owner \
      --mtime="@$when" --mode='u+rw,go-w' -cf - |
  gzip -n -9 > "$out.tmp"
mv "$out.tmp" "$out"
md5=$(md5sum "$out" | cut -d' ' -f1)
for r in aap aap-sim; do
  spec=rockspec/$r-$version-1.rockspec
  grep -q "url = \"file://$out\"," "$spec" || { echo "dist: $spec has no source url file://$out" >&2; exit 1; }
  sed "s#url = \"file://$out\",#url = \"file://$PWD/$out\",\n  md5 = \"$md5\",#" "$spec" > "build/$r-$version-1.rockspec"
done
echo "$out"
