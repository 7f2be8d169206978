#!/usr/bin/env bash
# Assembles the runtime file set of the secret-resolver image into a directory: the given
# binaries, every shared library `ldd` reports for them, the dynamic loader, the CA bundle (for
# auth.jwks_url over HTTPS and PostgreSQL sslmode=verify-*), and /etc/passwd and /etc/group
# entries for the non-root user. The directory is a complete root file system for the binaries:
# the Dockerfile copies it into the runtime image, and tests/deploy/runtime_image_test.sh runs the
# sidecar in it with nothing from the host, so both use this one definition of the file set.
#
#   deploy/docker/assemble-runtime.sh [--uid N] OUT_DIR BINARY...
#
# Binaries go to OUT_DIR/usr/local/bin/. Libraries keep the path they have on this machine
# (Debian 12, merged /usr): symbolic links on the way (/lib -> usr/lib, /lib64/ld-linux...) are
# recreated as links, the files they lead to are copied. OUT_DIR/etc/passwd and etc/group gain
# a `nonroot` entry (default uid and gid 65532) when they lack one; if they do not exist they are
# created with root and nonroot only (so an OUT_DIR seeded with a base image's files keeps them).
# Fails if `ldd` reports a library as not found.
set -euo pipefail

uid=65532
if [[ ${1:-} == --uid ]]; then
  uid=${2:?--uid needs a number}
  shift 2
fi
if (($# < 2)); then
  echo "usage: $0 [--uid N] OUT_DIR BINARY..." >&2
  exit 2
fi
out=$1
shift
mkdir -p "$out"
out=$(cd "$out" && pwd)

# Copies host path $1 (absolute) into $out at the same path. Every symbolic link met on the way
# is recreated as the same link, and what it points to is copied as well, so that the path
# resolves inside $out exactly as it does on the host. Files are written only at paths whose
# every directory is a real directory on the host, so a link in $out is never followed out of it.
copy_path() {
  local path=$1 hops=0
  while :; do
    ((++hops <= 40)) || { echo "$0: too many symbolic links: $1" >&2; return 1; }
    local prefix="" rest=${path#/} component link=""
    while [[ -n $rest ]]; do
      component=${rest%%/*}
      if [[ $rest == */* ]]; then rest=${rest#*/}; else rest=""; fi
      prefix+="/$component"
      if [[ -L $prefix ]]; then link=$prefix; break; fi
    done
    if [[ -z $link ]]; then
      [[ -e $out$path ]] || install -D -m "$(stat -c %a "$path")" "$path" "$out$path"
      return 0
    fi
    local target
    target=$(readlink "$link")
    mkdir -p "$out$(dirname "$link")"
    if [[ ! -L $out$link ]]; then ln -s "$target" "$out$link"; fi
    if [[ $target != /* ]]; then target=$(dirname "$link")/$target; fi
    path=$target${rest:+/$rest}
    # Normalize ".." so that the next round walks a clean absolute path.
    path=$(realpath -m -s "$path")
  done
}

libraries() {
  local binary=$1 report
  report=$(ldd "$binary") || { echo "$0: ldd $binary failed" >&2; return 1; }
  if grep -q "not found" <<<"$report"; then
    echo "$0: $binary: missing libraries:" >&2
    grep "not found" <<<"$report" >&2
    return 1
  fi
  # "libx.so.1 => /path (0x...)" and the loader's "/lib64/ld-linux-x86-64.so.2 (0x...)";
  # linux-vdso.so.1 has no file.
  awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }' <<<"$report"
}

for binary in "$@"; do
  install -D -m 755 "$binary" "$out/usr/local/bin/$(basename "$binary")"
  while read -r lib; do
    copy_path "$lib"
  done < <(libraries "$binary")
done

# Trust anchors for libcurl (auth.jwks_url) and libpq (sslrootcert=...), when installed here.
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  copy_path /etc/ssl/certs/ca-certificates.crt
fi

# The non-root user. libpq looks up the user name of the process (the default database user)
# and secretctl records it as the actor, so the uid must have a passwd entry.
mkdir -p "$out/etc" "$out/tmp"
chmod 1777 "$out/tmp"
[[ -f $out/etc/passwd ]] || echo "root:x:0:0:root:/root:/usr/sbin/nologin" >"$out/etc/passwd"
[[ -f $out/etc/group ]] || echo "root:x:0:" >"$out/etc/group"
grep -q "^nonroot:" "$out/etc/passwd" ||
  echo "nonroot:x:$uid:$uid:nonroot:/home/nonroot:/usr/sbin/nologin" >>"$out/etc/passwd"
grep -q "^nonroot:" "$out/etc/group" || echo "nonroot:x:$uid:" >>"$out/etc/group"
[[ -f $out/etc/nsswitch.conf ]] ||
  printf '%s\n' "passwd: files" "group: files" "hosts: files dns" >"$out/etc/nsswitch.conf"
chmod 644 "$out/etc/passwd" "$out/etc/group" "$out/etc/nsswitch.conf"
mkdir -p "$out/home/nonroot"
