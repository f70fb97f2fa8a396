#!/usr/bin/env bash
# fetch.sh: prepare everything scripts/vm/vm-exec needs, once.
#  - installs qemu-system-x86 busybox-static cpio xz-utils (apt, only if missing)
#  - downloads Debian's linux-image-<ABI>-amd64 .deb (not installed on the host)
#  - extracts an uncompressed ELF vmlinux (PVH boot: no in-guest decompression under TCG)
#    and the .ko modules for SCTP + netem, in load order, into the cache
#  - smoke-boots the kernel once under qemu TCG
# Idempotent: with a warm cache it does no apt and no download.
# Env: SPLICEGEN_VM_CACHE (default ~/.cache/splicegen-vm),
#      SPLICEGEN_VM_REFRESH=1 re-resolves the ABI from apt and fetches it if new.
set -euo pipefail

CACHE=$(realpath -m "${SPLICEGEN_VM_CACHE:-$HOME/.cache/splicegen-vm}")
# Modules wanted; their hard deps (from each .ko's modinfo "depends=") are added first.
# crc32c_generic is libcrc32c's softdep: no modprobe in the guest, so it is named explicitly.
WANT_MODULES="crc32c_generic sctp sch_netem"
PKGS="qemu-system-x86 busybox-static cpio xz-utils"

log() { echo "fetch.sh: $*" >&2; }
# Run a noisy command with its output in $CACHE/apt.log; show the log only on failure.
quiet() { "$@" >>"$CACHE/apt.log" 2>&1 || { tail -n 30 "$CACHE/apt.log" >&2; return 1; }; }
die() { echo "fetch.sh: error: $*" >&2; exit 1; }

mkdir -p "$CACHE/debs" "$CACHE/kernels"
# Serialise concurrent callers (go test runs several vm-exec at once).
exec 9>"$CACHE/.lock"
flock 9

# Elapsed seconds since $1 (an $EPOCHREALTIME value), one decimal.
since() { local us=$(( ${EPOCHREALTIME/./} - ${1/./} )); printf '%d.%d' $((us / 1000000)) $((us / 100000 % 10)); }
t0=$EPOCHREALTIME
did=()
report() { local out; out=$(printf '%s; ' "${did[@]}"); echo "fetch.sh: ${out%; } ($(since "$t0") s) -> $kdir"; }

# --- host packages ---------------------------------------------------------
missing=()
for p in $PKGS; do
  [[ $(dpkg-query -W -f='${Status}' "$p" 2>/dev/null) == "install ok installed" ]] || missing+=("$p")
done
if ((${#missing[@]})); then
  [[ $(id -u) == 0 ]] || die "need root to apt-get install ${missing[*]}"
  log "installing ${missing[*]}"
  quiet apt-get update
  quiet env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
  did+=("installed ${missing[*]}")
fi

# --- kernel ----------------------------------------------------------------
if [[ -f $CACHE/current/ready && ${SPLICEGEN_VM_REFRESH:-0} != 1 ]]; then
  kdir=$(readlink -f "$CACHE/current")
  did+=("cache warm: $(cat "$kdir/version")")
  report
  exit 0
fi

resolve_abi() { apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/{print $2; exit}'; }
pkg=$(resolve_abi)
if [[ -z $pkg ]]; then
  quiet apt-get update
  pkg=$(resolve_abi)
fi
[[ -n $pkg ]] || die "cannot resolve the kernel package via 'apt-cache depends linux-image-amd64'"
abi=${pkg#linux-image-}          # e.g. 6.1.0-48-amd64
kdir=$CACHE/kernels/$abi

if [[ ! -f $kdir/ready ]]; then
  deb=$(ls "$CACHE/debs/${pkg}_"*.deb 2>/dev/null | head -n1 || true)
  if [[ -z $deb ]]; then
    log "downloading $pkg"
    # Sandbox user root: the cache may be under /root, unreadable for _apt.
    (cd "$CACHE/debs" && quiet apt-get download -o APT::Sandbox::User=root "$pkg") || {
      quiet apt-get update
      (cd "$CACHE/debs" && quiet apt-get download -o APT::Sandbox::User=root "$pkg")
    }
    deb=$(ls "$CACHE/debs/${pkg}_"*.deb | head -n1)
    find "$CACHE/debs" -name '*.deb' ! -name "${pkg}_*" -delete   # older ABIs
    did+=("downloaded $(basename "$deb")")
  fi

  tmp=$(mktemp -d "$CACHE/.extract.XXXXXX")
  trap 'rm -rf "$tmp"' EXIT
  # Only the bzImage and the module dirs that can hold SCTP/netem and their deps.
  # modules.dep is not in the .deb (depmod runs in postinst), hence modinfo parsing below.
  dpkg-deb --fsys-tarfile "$deb" | tar -x -C "$tmp/" --wildcards \
    '*/boot/vmlinuz-*' '*/modules/*/kernel/net/*' '*/modules/*/kernel/lib/*' '*/modules/*/kernel/crypto/*'
  vmlinuz=$(ls "$tmp"/boot/vmlinuz-* | head -n1)
  mkdir -p "$tmp/out/modules"
  cp "$vmlinuz" "$tmp/out/vmlinuz"

  # vmlinux: find the compressed payload inside the bzImage and decompress it (like
  # the kernel's scripts/extract-vmlinux). Debian uses XZ; zstd/gzip kept as fallbacks.
  is_elf() { [[ $(head -c4 "$1" | od -An -tx1 | tr -d ' \n') == 7f454c46 ]]; }
  try_extract() { # $1=magic regex for grep -P, $2..=decompressor
    local re=$1; shift
    local off
    for off in $(LC_ALL=C grep -obUaP "$re" "$vmlinuz" | cut -d: -f1 | head -n5); do
      tail -c +$((off + 1)) "$vmlinuz" | "$@" >"$tmp/out/vmlinux" 2>/dev/null || true
      is_elf "$tmp/out/vmlinux" && return 0
    done
    return 1
  }
  try_extract '\xfd7zXZ\x00' xz -dc --single-stream ||
    try_extract '\x28\xb5\x2f\xfd' zstd -dc ||
    try_extract '\x1f\x8b\x08' gzip -dc ||
    { rm -f "$tmp/out/vmlinux"; log "no ELF vmlinux found in $vmlinuz; will boot the bzImage"; }

  # Modules: resolve hard deps from the .modinfo "depends=" string, deps first.
  # Decompresses .ko.xz / .ko.zst so the guest's busybox insmod needs no decompressor.
  order=()
  find_ko() { find "$tmp" -path "$tmp/out" -prune -o \( -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" \) -print -quit; }
  add_mod() {
    local name=${1//-/_} f e d
    for e in "${order[@]}"; do [[ $e == "$name" ]] && return 0; done
    f=$(find_ko "$name"); [[ -n $f ]] || f=$(find_ko "${name//_/-}")
    [[ -n $f ]] || die "module $name not found in $deb (only kernel/{net,lib,crypto} are extracted)"
    case $f in
      *.ko.xz) xz -dc "$f" >"$tmp/out/modules/$name.ko" ;;
      *.ko.zst) zstd -qdc "$f" >"$tmp/out/modules/$name.ko" ;;
      *) cp "$f" "$tmp/out/modules/$name.ko" ;;
    esac
    d=$(tr '\0' '\n' <"$tmp/out/modules/$name.ko" | awk '!n && sub(/^depends=/, "") {print; n=1}')
    for e in ${d//,/ }; do add_mod "$e"; done
    order+=("$name")
  }
  for m in $WANT_MODULES; do add_mod "$m"; done
  printf '%s\n' "${order[@]}" >"$tmp/out/modules.load"
  echo "$abi ($(dpkg-deb -f "$deb" Version))" >"$tmp/out/version"

  # Smoke boot: tiny initramfs whose init writes 0x2a to isa-debug-exit -> qemu rc 85.
  smoke() { # $1=kernel image; returns 0 if it reached init
    local d=$tmp/smoke
    rm -rf "$d"; mkdir -p "$d/bin" "$d/dev"
    cp /bin/busybox "$d/bin/busybox"
    printf '%s\n' '#!/bin/busybox sh' '/bin/busybox mount -t devtmpfs dev /dev' \
      "/bin/busybox printf '\\052' | /bin/busybox dd of=/dev/port bs=1 seek=244 count=1 2>/dev/null" \
      '/bin/busybox poweroff -f' >"$d/init"
    chmod +x "$d/init"
    (cd "$d" && find . | cpio -o -H newc --quiet) >"$tmp/smoke.cpio"
    local rc=0
    timeout -k 5 60 qemu-system-x86_64 -machine pc -accel tcg -cpu max -m 256 -smp 2 \
      -nographic -no-reboot -nodefaults -serial "file:$tmp/smoke.log" \
      -device isa-debug-exit,iobase=0xf4,iosize=0x04 \
      -kernel "$1" -initrd "$tmp/smoke.cpio" -append "console=ttyS0 panic=-1 quiet" \
      </dev/null >"$tmp/smoke.qemu" 2>&1 || rc=$?
    [[ $rc == 85 ]]
  }
  s0=$EPOCHREALTIME
  if [[ -f $tmp/out/vmlinux ]] && smoke "$tmp/out/vmlinux"; then
    ln -s vmlinux "$tmp/out/kernel"; how="PVH boot of ELF vmlinux"
  elif smoke "$tmp/out/vmlinuz"; then
    ln -s vmlinuz "$tmp/out/kernel"; how="bzImage boot (PVH failed: slower)"
    log "warning: PVH boot of vmlinux failed; using bzImage"
  else
    cat "$tmp/smoke.qemu" "$tmp/smoke.log" >&2 2>/dev/null || true
    die "smoke boot of $abi failed (see output above)"
  fi
  how="$how ok in $(since "$s0")s"
  touch "$tmp/out/ready"
  rm -rf "$kdir"
  mv "$tmp/out" "$kdir"
  did+=("extracted $abi: ${order[*]}; $how")
fi
ln -sfn "kernels/$abi" "$CACHE/current.new" && mv -T "$CACHE/current.new" "$CACHE/current"
report
