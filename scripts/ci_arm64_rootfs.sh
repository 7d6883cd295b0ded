#!/usr/bin/env bash
# The README's two commands as a Raspberry Pi owner runs them, on Debian 12 arm64 under
# user-mode emulation (docs/raspberry-pi.md, "What was verified"):
#   1. a Debian bookworm arm64 root filesystem: `debootstrap --foreign`, then the second stage
#      in a real chroot, with qemu-user-static registered in binfmt_misc with flag F (proot
#      cannot run CMake: its path translation misses statx). Packages: the ones
#      docs/raspberry-pi.md tells a Pi owner to apt-get, nothing else (CMake and Ninja come from
#      pip, as on a Pi). About 10 minutes; with --cache DIR it is built once and reused;
#   2. this checkout's files (tracked and untracked, not ignored: no build folders) copied into
#      /home/pi/looplm, owned by an ordinary user `pi`;
#   3. inside the chroot, as `pi`, in a fresh venv of the system python3 (3.11), under
#      QEMU_CPU=cortex-a76 (the Pi 5's core): the README's main command, then its test
#      command, both read from README.md between the `<!-- readme-command: ... -->` markers
#      (so they cannot drift), and the answer the README promises checked; the test command
#      runs the test files of QEMU_SUBSET below (or, with --all, the whole suite);
#   4. `looplm info` under cortex-a76 (dotprod chosen) and cortex-a53 (ARMv8.0: neon chosen,
#      and the build made under the default CPU model runs there: no -march=native), and a
#      short greedy `looplm run` under cortex-a53.
#
# Usage: scripts/ci_arm64_rootfs.sh [--cache DIR] [--all]
#   --cache DIR    keep the pristine root filesystem in DIR/rootfs (stamped with the suite and
#                  packages) and reuse it when the stamp matches; each run works on a copy
#   --all          the test command runs the whole suite (824 tests; too slow under emulation
#                  for CI), less the cases of QEMU_DESELECT, instead of QEMU_SUBSET's files
# Measured times are in docs/raspberry-pi.md ("What was verified").
# Environment: LOOPLM_JOBS (build jobs, default 2), TMPDIR (the work folder's parent).
# Needs root (debootstrap, chroot, mounts), Debian's package mirror and PyPI. Installs
# debootstrap and qemu-user-static with apt-get when missing. Unmounts everything on exit or
# failure, and removes its work folder (never the cache). Prints the time of each step.
set -euo pipefail
cd "$(dirname "$0")/.."
repo="$(pwd)"

# Deselected under emulation, and only there: the two closed-stdin cases (`<&-`). qemu-user
# opens the guest binary itself before the guest runs, and with fd 0 closed that file takes fd
# 0, so looplm sees an open stdin holding an ELF file ("-: not UTF-8 text (byte 18)": e_machine)
# instead of a closed one. Nothing of the kind happens on a Pi; the x86 run of .ci/run keeps them.
# And the real out-of-memory test: it caps RLIMIT_AS just above the process's size, and under
# qemu-user that limit also covers qemu's own translation cache and address-space reservations,
# so the cap fails in the emulator, not in the code under test (the fault-injection tests of
# tests/test_failures.py hold the same promise under emulation).
QEMU_DESELECT=(
    "tests/test_failures.py::test_real_out_of_memory_leaves_the_context_as_it_was"
    "tests/test_cli_behaviour.py::test_closed_standard_streams_give_one_line[<&--args1-standard input is closed]"
    "tests/test_cli_behaviour.py::test_closed_standard_streams_give_one_line[<&--args2-standard input is closed]"
)

# The test files the test command runs under emulation by default: what a Pi owner's install
# must get right, each against an independent reference, in about 50 s of pytest natively
# (x86, 2 cores) -- the whole suite is several times that, and Python under qemu-user runs
# some 10-20 times slower than natively:
#   test_convert.py    conversion: metadata, exact values, gguf-py-identical quants, bad input
#   test_runtime.py    the native looped forward pass against the NumPy reference
#   test_exit.py       early exit: exact mode equals the reference, skip mode's policy
#   test_tokenizer.py  the native tokenizer against HF tokenizers
#   test_cli.py        the looplm command through subprocesses, pipes and a pseudo-terminal
#   test_kernels.py    every kernel set this CPU has (ref, neon, dotprod on the A76) against
#                      the scalar reference and gguf-py, under the Pi's own compiler
# Left to the x86 run of .ci/run (and to --all): the server and load tests, hostile input,
# generation APIs, K-quant writing, KV-cache variants, typing -- platform-independent Python
# over the same core, whose arm64 kernels scripts/ci_arm.sh tests for the A76 and the A53.
QEMU_SUBSET=(
    tests/test_convert.py
    tests/test_runtime.py
    tests/test_exit.py
    tests/test_tokenizer.py
    tests/test_cli.py
    tests/test_kernels.py
)

SUITE=bookworm
PACKAGES="python3-venv,python3-dev,build-essential"
STAMP="looplm-rootfs v1: debian $SUITE arm64 minbase + $PACKAGES + user pi (1000)"

cache=""
all=0
while [ $# -gt 0 ]; do
    case "$1" in
        --cache) cache="${2:?--cache needs a folder}"; shift 2 ;;
        --all) all=1; shift ;;
        *) echo "usage: $0 [--cache DIR] [--all]" >&2; exit 2 ;;
    esac
done
jobs="${LOOPLM_JOBS:-2}"

fail() {
    echo "ci_arm64_rootfs: FAILED: $*" >&2
    exit 1
}
say() { echo "ci_arm64_rootfs: $*"; }
t_start=$(date +%s)
t_step=$t_start
step_done() {  # step_done WHAT: prints WHAT with the time since the last step
    local now
    now=$(date +%s)
    say "$1 in $((now - t_step))s"
    t_step=$now
}

[ "$(id -u)" = 0 ] || fail "needs root (debootstrap, chroot, mount)"
[ "$(uname -m)" = aarch64 ] && fail "this machine is aarch64: run the README's commands natively instead"

# ---- work folder and cleanup: unmount whatever is mounted under it, then remove it (only
# when nothing is left mounted, so that no rm ever reaches a bind-mounted /dev).
work="$(mktemp -d "${TMPDIR:-/tmp}/looplm-arm64.XXXXXX")"
mounts_under() {  # the mount points under $1, deepest first
    awk -v p="$1/" 'index($2, p) == 1 { print $2 }' /proc/mounts | sort -r
}
unmount_all() {
    local dir="$1" m
    for m in $(mounts_under "$dir"); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || echo "ci_arm64_rootfs: could not unmount $m" >&2
    done
    [ -z "$(mounts_under "$dir")" ]
}
cleanup() {
    local status=$?
    if unmount_all "$work"; then
        rm -rf "$work"
    else
        echo "ci_arm64_rootfs: left $work in place: something is still mounted under it" >&2
    fi
    if [ -n "$cache" ] && ! unmount_all "$cache"; then
        echo "ci_arm64_rootfs: something is still mounted under $cache" >&2
    fi
    [ $status = 0 ] || echo "ci_arm64_rootfs: failed after $(($(date +%s) - t_start))s" >&2
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- tools and binfmt_misc
if ! command -v debootstrap >/dev/null 2>&1 || [ ! -x /usr/libexec/qemu-binfmt/aarch64-binfmt-P ]; then
    say "installing debootstrap and qemu-user-static"
    { DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap qemu-user-static >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap qemu-user-static >/dev/null; }; } ||
        fail "apt-get install debootstrap qemu-user-static"
fi
binfmt=/proc/sys/fs/binfmt_misc
[ -e "$binfmt/register" ] || mount -t binfmt_misc binfmt_misc "$binfmt" || fail "cannot mount binfmt_misc on $binfmt"
# Flag F opens the interpreter now, so that it runs inside the chroot, where the path does not
# exist. An entry without F (qemu-user-binfmt's) is replaced by qemu-user-static's.
if [ -e "$binfmt/qemu-aarch64" ] && ! grep -q '^flags: .*F' "$binfmt/qemu-aarch64"; then
    say "replacing the binfmt_misc entry qemu-aarch64 (no flag F) with qemu-user-static's"
    echo -1 >"$binfmt/qemu-aarch64"
fi
if [ ! -e "$binfmt/qemu-aarch64" ]; then
    conf=/usr/lib/binfmt.d/qemu-aarch64.conf
    [ -f "$conf" ] || fail "no $conf (qemu-user-static)"
    grep -q ':[A-Z]*F[A-Z]*$' "$conf" || fail "$conf has no flag F"
    cat "$conf" >"$binfmt/register" || fail "cannot register $conf in binfmt_misc"
fi
grep -q '^enabled' "$binfmt/qemu-aarch64" || fail "binfmt_misc entry qemu-aarch64 is disabled"

# ---- 1. the root filesystem
rootfs_valid() {  # rootfs_valid DIR: the stamp matches and the chroot runs python3
    [ -f "$1.stamp" ] && [ "$(cat "$1.stamp")" = "$STAMP" ] && [ -z "$(mounts_under "$1")" ] &&
        chroot "$1" /usr/bin/python3 -c 'import venv, sysconfig' >/dev/null 2>&1
}
build_rootfs() {  # build_rootfs DIR
    local dir="$1"
    rm -rf "$dir" "$dir.stamp"
    mkdir -p "$dir"
    say "debootstrap --foreign --arch=arm64 --variant=minbase $SUITE (+ $PACKAGES)"
    debootstrap --foreign --arch=arm64 --variant=minbase --include="$PACKAGES" "$SUITE" "$dir" >"$work/debootstrap1.log" 2>&1 ||
        { tail -30 "$work/debootstrap1.log"; fail "debootstrap, first stage"; }
    step_done "first stage (download and unpack)"
    say "debootstrap --second-stage in the chroot (emulated)"
    chroot "$dir" /debootstrap/debootstrap --second-stage >"$work/debootstrap2.log" 2>&1 ||
        { tail -30 "$work/debootstrap2.log"; tail -30 "$dir/debootstrap/debootstrap.log" 2>/dev/null; fail "debootstrap, second stage"; }
    unmount_all "$dir" || fail "mounts left under $dir after the second stage"
    chroot "$dir" /usr/sbin/useradd -m -u 1000 -s /bin/bash pi || fail "useradd pi"
    rm -rf "$dir/var/cache/apt/archives/"*.deb "$dir/var/lib/apt/lists/"*_Packages
    echo "$STAMP" >"$dir.stamp"
    step_done "second stage"
}
if [ -n "$cache" ]; then
    mkdir -p "$cache"
    cache="$(cd "$cache" && pwd)"
    if rootfs_valid "$cache/rootfs"; then
        say "reusing the root filesystem in $cache/rootfs"
    else
        build_rootfs "$cache/rootfs"
    fi
    cp -a "$cache/rootfs" "$work/rootfs" || fail "copy of $cache/rootfs"
    step_done "copied the cached root filesystem"
else
    build_rootfs "$work/rootfs"
fi
root="$work/rootfs"
say "$(chroot "$root" /usr/bin/python3 --version), $(chroot "$root" /usr/bin/g++ --version | head -1)"

# ---- 2. the checkout, and the README's commands
files="$work/files.tar"
git -C "$repo" ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' f; do [ -e "$f" ] && printf '%s\0' "$f"; done |
    tar --null -T - -cf "$files" || fail "git ls-files / tar of the checkout"
mkdir -p "$root/home/pi/looplm"
tar -xf "$files" -C "$root/home/pi/looplm"
chown -R 1000:1000 "$root/home/pi"

readme() { python3 -c "import sys; sys.path.insert(0, 'tests'); from readme_demo import readme_command; print(readme_command('$1'))"; }
main_cmd="$(readme main)" || fail "README.md: no main command"
test_cmd="$(readme test)" || fail "README.md: no test command"
answer="$(python3 -c "import sys; sys.path.insert(0, 'tests'); from readme_demo import answer; print(answer())")" ||
    fail "README.md: no promised answer"
case "$test_cmd" in *"&& pytest") ;; *) fail "README.md's test command does not end in '&& pytest' (the selection is appended to it)" ;; esac
# The deselected cases that belong to the selection (pytest counts only those).
deselect=()
for t in "${QEMU_DESELECT[@]}"; do
    if [ $all = 1 ]; then
        deselect+=("$t")
    else
        for f in "${QEMU_SUBSET[@]}"; do
            if [ "${t%%::*}" = "$f" ]; then deselect+=("$t"); fi
        done
    fi
done
if [ $all = 0 ]; then
    for f in "${QEMU_SUBSET[@]}"; do
        [ -f "$f" ] || fail "QEMU_SUBSET names $f, which does not exist"
        test_cmd="$test_cmd $f"
    done
fi
for t in "${deselect[@]}"; do test_cmd="$test_cmd --deselect $(printf '%q' "$t")"; done
printf '%s\n' "$main_cmd" >"$root/home/pi/readme-main.sh"
printf '%s\n' "$test_cmd" >"$root/home/pi/readme-test.sh"
cp /etc/resolv.conf "$root/etc/resolv.conf"
# The host's CA bundle, so that pip in the chroot trusts what pip on the host trusts (a
# network whose TLS goes through a proxy has that proxy's CA in it).
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
    mkdir -p "$root/etc/ssl/certs"
    cp /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi

# ---- 3. mounts, and a shell as pi
mount -t proc proc "$root/proc"
mount -t sysfs sysfs "$root/sys"
mount --bind /dev "$root/dev"
mount --bind /dev/pts "$root/dev/pts"
mount -t tmpfs tmpfs "$root/dev/shm"
as_pi() {  # as_pi QEMU_CPU SCRIPT: runs SCRIPT with bash -c in /home/pi/looplm as pi
    chroot --userspec=1000:1000 "$root" /usr/bin/env -i HOME=/home/pi USER=pi LOGNAME=pi LANG=C.UTF-8 \
        PATH=/home/pi/venv/bin:/usr/local/bin:/usr/bin:/bin CMAKE_BUILD_PARALLEL_LEVEL="$jobs" QEMU_CPU="$1" \
        /bin/bash -c "set -euo pipefail; cd /home/pi/looplm; $2"
}
step_done "checkout copied, chroot ready"

as_pi cortex-a76 "python3 -m venv /home/pi/venv" || fail "python3 -m venv"
say "README main command (cortex-a76): $main_cmd"
as_pi cortex-a76 ". /home/pi/venv/bin/activate && bash -euo pipefail /home/pi/readme-main.sh" >"$work/main.log" 2>&1 ||
    { tail -40 "$work/main.log"; fail "the README's main command"; }
grep -F -q -- "$answer" "$work/main.log" || { tail -20 "$work/main.log"; fail "the main command did not print '$answer'"; }
say "  it printed: $(grep -F -- "$answer" "$work/main.log" | tail -1)"
step_done "README main command (pip install . and looplm run)"

say "README test command (cortex-a76): $test_cmd"
as_pi cortex-a76 ". /home/pi/venv/bin/activate && bash -euo pipefail /home/pi/readme-test.sh" >"$work/test.log" 2>&1 ||
    { tail -60 "$work/test.log"; fail "the README's test command"; }
grep -E '^=+ .*(passed|failed).* in ' "$work/test.log" | tail -1 | sed 's/^/    /'
if [ ${#deselect[@]} -gt 0 ]; then
    grep -Eq "^=+ .* ${#deselect[@]} deselected" "$work/test.log" || fail "pytest did not deselect the ${#deselect[@]} cases of QEMU_DESELECT (renamed?)"
fi
grep -Eq '^=+ [0-9]+ passed' "$work/test.log" || fail "pytest reported no passed tests"
if grep -Eq '^=+ .*(failed|error)' "$work/test.log"; then fail "pytest reported failures"; fi
grep -E '^(SKIPPED|XFAIL|XPASS)' "$work/test.log" | sed 's/^/    /' || true
step_done "README test command"

# ---- 4. kernel choice and portability
smollm="python3 -c 'import sys; sys.path.insert(0, \"tests\"); from readme_demo import find_smollm; print(find_smollm())'"
check_info() {  # check_info CPU EXPECTED-KERNELS-LINE
    local out
    out="$(as_pi "$1" "looplm info -m \"\$($smollm)\"" 2>&1)" || { echo "$out"; fail "looplm info under $1"; }
    echo "$out" | grep -E '^(build|cpu features|kernels):' | sed "s/^/    $1  /"
    echo "$out" | grep -Eq "^kernels: +$2\$" || fail "looplm info under $1: expected 'kernels: $2'"
    echo "$out" | grep -Eq '^build: .*portable' || fail "looplm info under $1: the build is not portable"
}
check_info cortex-a76 "dotprod \(available: ref, neon, dotprod\)"
check_info cortex-a53 "neon \(available: ref, neon\)"
out="$(as_pi cortex-a53 "looplm run -m \"\$($smollm)\" -p 'What is the capital of Japan?' --system 'You are a helpful assistant.' --temp 0 -n 12" 2>&1)" ||
    { echo "$out"; fail "looplm run under cortex-a53"; }
say "  looplm run under cortex-a53 (neon): $(echo "$out" | tail -1)"
grep -F -q -- "$answer" <<<"$out" || fail "looplm run under cortex-a53 did not print '$answer'"
step_done "kernel choice (looplm info, looplm run under cortex-a53)"
say "passed in $(($(date +%s) - t_start))s"
