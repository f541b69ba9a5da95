#!/usr/bin/env bash
# Rebuilds Ferry's vendored libunftp from the pristine crate and the patch files in
# vendor/libunftp-patches/, so that carrying (and upgrading) the vendored crate is mechanical.
# vendor/libunftp/FERRY-PATCHES.md lists the patches and says how to upgrade or add one.
#
#   scripts/libunftp-patches.sh [VERSION] [--from DIR] [--patches DIR] [--out DIR]
#   scripts/libunftp-patches.sh [VERSION] --install      replace vendor/libunftp (keeps FERRY-PATCHES.md)
#   scripts/libunftp-patches.sh [VERSION] --verify       rebuild and diff against vendor/libunftp
#   scripts/libunftp-patches.sh --diff BEFORE AFTER      print a patch file turning tree BEFORE into AFTER
#
# VERSION defaults to the version in vendor/libunftp/Cargo.toml (0.24.0 when it has none).
# The pristine crate comes from crates.io through cargo (a throwaway project and `cargo fetch`),
# or from --from DIR, an unpacked crate (e.g. ~/.cargo/registry/src/*/libunftp-VERSION).
# --patches DIR (or LIBUNFTP_PATCHES=DIR) applies the patch files of DIR instead.
# --upto NN stops after the patch files numbered NN (a scratch tree for fixing patch NN+1).
#
# The patch directory holds, applied in the order of their names:
#   NN-name.remove  paths (one a line, # comments) deleted from the tree; each must exist
#   NN-name.patch   a unified diff applied with `patch -p1` from the crate's root, with no fuzz
# A patch that does not apply exactly stops the script with a non-zero exit, naming the file and
# showing the rejected hunks; the tree as it was before that patch is kept for fixing it by hand.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
vendor="$root/vendor/libunftp"
me=libunftp-patches

die() {
  echo "$me: $*" >&2
  exit 1
}

usage() {
  sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2
  exit "${1:-2}"
}

version=""
from=""
patches="${LIBUNFTP_PATCHES:-$root/vendor/libunftp-patches}"
out=""
mode="build"
upto=""
diff_before=""
diff_after=""
while (($#)); do
  case "$1" in
    --from) from=${2:?--from needs a directory}; shift 2 ;;
    --patches) patches=${2:?--patches needs a directory}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --upto) upto=${2:?--upto needs a patch number}; shift 2 ;;
    --install) mode="install"; shift ;;
    --verify) mode="verify"; shift ;;
    --diff)
      mode="diff"
      diff_before=${2:?--diff needs BEFORE and AFTER}
      diff_after=${3:?--diff needs BEFORE and AFTER}
      shift 3
      ;;
    -h | --help) usage 0 ;;
    -*) echo "$me: unknown option $1" >&2; usage ;;
    *) [[ -z $version ]] || die "one version only (got $version and $1)"; version=$1; shift ;;
  esac
done

# Temporary directories go away on exit, except one named in `keep` (a failed build's tree,
# which the person fixing the patch needs).
work=$(mktemp -d "${TMPDIR:-/tmp}/libunftp-patches.XXXXXX")
keep=""
cleanup() {
  if [[ -n $keep ]]; then
    find "$work" -mindepth 1 -maxdepth 1 ! -path "$keep" -exec rm -rf {} +
  else
    rm -rf "$work"
  fi
}
trap cleanup EXIT

# --diff: the one way patch files are written, so that all of them have the same form
# (git's unified diff with a/ and b/ paths, no timestamps; GNU patch and git apply both read it).
# Copies to directories literally named a and b so that the paths come out as a/src/... b/src/...
if [[ $mode == diff ]]; then
  [[ -d $diff_before && -d $diff_after ]] || die "--diff: $diff_before and $diff_after must be directories"
  mkdir "$work/d"
  cp -a "$diff_before" "$work/d/a"
  cp -a "$diff_after" "$work/d/b"
  # FERRY-PATCHES.md is Ferry's documentation, not part of any patch.
  rm -f "$work/d/a/FERRY-PATCHES.md" "$work/d/b/FERRY-PATCHES.md"
  rc=0
  (cd "$work/d" && git -c core.quotePath=false -c diff.noprefix=false -c diff.mnemonicPrefix=false \
    diff --no-index --no-prefix --no-renames --no-color --no-ext-diff --no-textconv a b) || rc=$?
  # git diff --no-index exits 1 when the trees differ, 0 when they do not, >1 on error.
  case $rc in
    0) die "--diff: $diff_before and $diff_after are the same" ;;
    1) exit 0 ;;
    *) die "--diff: git diff failed ($rc)" ;;
  esac
fi

[[ -z $upto || $upto =~ ^[0-9][0-9]?$ ]] || die "--upto takes a patch number (NN), not $upto"
command -v patch >/dev/null || die "needs GNU patch (apt-get install patch)"
[[ -d $patches ]] || die "no patch directory $patches"
patches=$(cd "$patches" && pwd)

# The patch steps, NN-name, in name order; checked before anything is fetched. Any other file
# is refused: a misnamed patch silently skipped would be worse than no script.
stems=()
for f in "$patches"/*; do
  name=${f##*/}
  [[ $name =~ ^[0-9][0-9]-[a-z0-9-]+\.(patch|remove)$ ]] ||
    die "$patches/$name: not an NN-name.patch or NN-name.remove file; refusing to guess what it is"
  stem=${name%.*}
  [[ " ${stems[*]} " == *" $stem "* ]] || stems+=("$stem")
done
((${#stems[@]})) || die "no patch files in $patches"
mapfile -t stems < <(printf '%s\n' "${stems[@]}" | LC_ALL=C sort)

if [[ -z $version ]]; then
  # The vendored crate's own version, so that --verify after an upgrade needs no argument.
  version=$(sed -n 's/^version = "\(.*\)"$/\1/p' "$vendor/Cargo.toml" 2>/dev/null | head -n1)
  version=${version:-0.24.0}
fi

# The pristine crate: exactly the published .crate's contents.
pristine="$work/pristine"
if [[ -n $from ]]; then
  [[ -f $from/Cargo.toml ]] || die "--from $from: no Cargo.toml there, not an unpacked crate"
  cp -a "$from" "$pristine"
else
  # cargo fetches from crates.io (or the registry cargo is configured with) into its cache; the
  # throwaway project sits outside Ferry's workspace so that Ferry's [patch] does not apply.
  proj="$work/fetch"
  mkdir -p "$proj"
  printf '[package]\nname = "libunftp-fetch"\nversion = "0.0.0"\nedition = "2021"\npublish = false\n\n[lib]\npath = "lib.rs"\n\n[dependencies]\nlibunftp = "=%s"\n' \
    "$version" >"$proj/Cargo.toml"
  : >"$proj/lib.rs"
  echo "$me: fetching libunftp $version with cargo" >&2
  (cd "$proj" && cargo fetch --quiet) || die "cargo could not fetch libunftp $version"
  crate=""
  for c in "${CARGO_HOME:-$HOME/.cargo}"/registry/cache/*/"libunftp-$version.crate"; do
    [[ -f $c ]] && crate=$c && break
  done
  [[ -n $crate ]] || die "cargo fetched libunftp $version but its .crate is not in the registry cache"
  mkdir "$work/unpack"
  tar -xzf "$crate" -C "$work/unpack"
  mv "$work/unpack/libunftp-$version" "$pristine"
fi
# cargo's unpack marker is not part of the published crate; a registry/src copy has one, a .crate
# does not. Dropping it makes both starting points the same (00-vendor-trim.patch adds today's).
rm -f "$pristine/.cargo-ok"
grep -q "^version = \"$version\"" "$pristine/Cargo.toml" ||
  echo "$me: warning: $pristine/Cargo.toml does not say version = \"$version\"" >&2

# Applies the patch steps to $1, in order.
apply_all() {
  local tree=$1 stem n=0
  for stem in "${stems[@]}"; do
    if [[ -n $upto ]] && ((10#${stem%%-*} > 10#$upto)); then
      break
    fi
    [[ -f $patches/$stem.remove ]] && remove_listed "$tree" "$patches/$stem.remove"
    [[ -f $patches/$stem.patch ]] && apply_one "$tree" "$patches/$stem.patch"
    n=$((n + 1))
  done
  echo "$me: applied $n patch step(s) from $patches onto libunftp $version" >&2
}

remove_listed() {
  local tree=$1 list=$2 path
  # shellcheck disable=SC2094 # fail_at only names the list, it does not write it
  while IFS= read -r path || [[ -n $path ]]; do
    path=${path%%#*}
    path=${path%"${path##*[![:space:]]}"}
    [[ -n $path ]] || continue
    [[ $path != /* && $path != *..* ]] || die "${list##*/}: $path must be a relative path inside the crate"
    # Strict like the patches: a path that is gone upstream means the list needs a look.
    [[ -e $tree/$path ]] || fail_at "$list" "$path is not in the pristine libunftp $version"
    rm -rf "${tree:?}/$path"
  done <"$list"
}

# Dry run first, so that a patch either applies whole or leaves the tree untouched.
apply_one() {
  local tree=$1 p=$2 outp
  if ! outp=$(patch -d "$tree" -p1 -F0 -N -t --dry-run --no-backup-if-mismatch -i "$p" 2>&1); then
    echo "$outp" >&2
    # Apply for real to a copy, only to collect the rejected hunks for the person fixing it.
    cp -a "$tree" "$work/rejects"
    patch -d "$work/rejects" -p1 -F0 -N -t --no-backup-if-mismatch -r "$work/rejected.rej" -i "$p" >/dev/null 2>&1 || true
    if [[ -s $work/rejected.rej ]]; then
      echo "---- rejected hunks of ${p##*/} ----" >&2
      cat "$work/rejected.rej" >&2
      echo "---- end of rejected hunks ----" >&2
    fi
    rm -rf "$work/rejects"
    fail_at "$p" "does not apply cleanly (no fuzz allowed)"
  fi
  # Offsets are accepted (upstream moved the code) but said: the patch file should be refreshed.
  if grep -q 'offset' <<<"$outp"; then
    echo "$me: note: ${p##*/} applies at an offset; regenerate it with --diff:" >&2
    grep 'offset' <<<"$outp" | sed 's/^/    /' >&2
  fi
  patch -d "$tree" -p1 -F0 -N -t --no-backup-if-mismatch -s -i "$p" >/dev/null ||
    fail_at "$p" "failed on the real run after a clean dry run"
}

fail_at() {
  keep="$work/tree"
  echo "$me: FAILED: ${1##*/}: $2" >&2
  echo "$me: the tree with every patch before ${1##*/} applied is kept in $keep" >&2
  exit 1
}

tree="$work/tree"
cp -a "$pristine" "$tree"
apply_all "$tree"

case $mode in
  build)
    if [[ -z $out ]]; then
      out=$(mktemp -d "${TMPDIR:-/tmp}/libunftp-$version.XXXXXX")
      rmdir "$out"
    fi
    [[ ! -e $out ]] || [[ -d $out && -z $(ls -A "$out") ]] || die "--out $out exists and is not empty"
    rm -rf "$out"
    mkdir -p "$(dirname "$out")"
    mv "$tree" "$out"
    echo "$out"
    ;;
  install)
    # FERRY-PATCHES.md is Ferry's, not the crate's: carry it over.
    [[ -f $vendor/FERRY-PATCHES.md ]] && cp -p "$vendor/FERRY-PATCHES.md" "$tree/"
    rm -rf "$vendor"
    mv "$tree" "$vendor"
    echo "$me: installed libunftp $version with the patches into vendor/libunftp" >&2
    ;;
  verify)
    [[ -d $vendor ]] || die "no $vendor to verify against"
    # Byte for byte, dotfiles included; only Ferry's own FERRY-PATCHES.md is not rebuilt.
    if ! diff -r --no-dereference -x FERRY-PATCHES.md "$tree" "$vendor" >"$work/verify.diff"; then
      cat "$work/verify.diff"
      die "verify: the rebuilt tree differs from vendor/libunftp (diff above: rebuilt, then vendored)"
    fi
    # Same executable bits too (git keeps them).
    if ! diff <(cd "$tree" && find . -type f -perm /111 | LC_ALL=C sort) \
      <(cd "$vendor" && find . -type f -perm /111 ! -name FERRY-PATCHES.md | LC_ALL=C sort); then
      die "verify: executable bits differ (above: rebuilt, then vendored)"
    fi
    # The convention that keeps `grep -rn "FERRY PATCH"` and the patch files in step: a source
    # patch NN-name adds `FERRY PATCH (name)` comments, and none naming another patch.
    for stem in "${stems[@]}"; do
      [[ -f $patches/$stem.patch && $stem != 00-vendor-trim ]] || continue
      name=${stem#[0-9][0-9]-}
      grep -q "^+.*FERRY PATCH ($name)" "$patches/$stem.patch" ||
        die "verify: $stem.patch adds no FERRY PATCH ($name) comment"
      if grep '^+.*FERRY PATCH (' "$patches/$stem.patch" | grep -v "FERRY PATCH ($name)"; then
        die "verify: $stem.patch adds the FERRY PATCH comments above, which name another patch"
      fi
    done
    files=$(cd "$tree" && find . -type f | wc -l)
    echo "$me: verify: OK: libunftp $version with the ${#stems[@]} patch steps of ${patches#"$root"/} equals vendor/libunftp byte for byte ($files files; FERRY-PATCHES.md not compared)"
    ;;
esac
