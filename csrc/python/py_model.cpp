// python/py_model.cpp - looplm._core.Model: a loaded model with its context, what
// looplm.Model wraps; and RunOptions, the resolved options of one evaluation. Translation only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <mutex>
#include <optional>

#include "model/context.h"
#include "python/bindings.h"
#include "python/gguf_values.h"
#include "quant/quantize.h"
#include "quant/traits.h"

namespace py = pybind11;

namespace looplm {

namespace {

RunRequest request(std::optional<int> loops, std::optional<double> threshold, const std::optional<std::string> & mode,
                   std::optional<int> at_step, const std::optional<std::string> & fill) {
    RunRequest r;
    r.loops = loops;
    r.exit.threshold = threshold;
    if (mode) r.exit.mode = parse_exit_mode(*mode);
    r.exit.exit_at_step = at_step;
    if (fill) r.exit.fill = parse_kv_fill(*fill);
    return r;
}

const char * kv_dtype_name(DType t) {
    switch (t) {
        case DType::F32: return "f32";
        case DType::Q8_0: return "q8_0";
        case DType::Q4_0: return "q4_0";
        default: return "f16";
    }
}

// A loaded model with its context: what looplm.Model wraps.
class PyModel {
  public:
    PyModel(const std::string & path, int64_t n_ctx, int n_threads, int loops, const KVSettings & kv,
            const std::string & kernels, int64_t n_batch, const RunRequest & defaults, bool use_mmap, bool use_mlock)
        : model_(path, use_mmap, use_mlock), defaults_(defaults) {
        ContextParams p;
        p.n_ctx = n_ctx;
        p.n_threads = n_threads;
        p.n_loops = loops;
        p.n_batch = n_batch;
        kv.apply(p);
        if (!kernels.empty()) p.kernels = &kernel_set(kernels);
        ctx_.reset(new Context(model_, p));
        load_options_ = ctx_->resolve(defaults_);  // validates the load-time options
    }

    // The load-time options with the fields a call sets taken from the call.
    RunOptions resolve(const RunRequest & call) const { return ctx_->resolve(defaults_.merged(call)); }
    const RunOptions & load_options() const { return load_options_; }

    py::array_t<float> eval(py::array_t<int32_t, py::array::c_style | py::array::forcecast> tokens, bool all_logits,
                            const RunOptions & opts) {
        if (tokens.ndim() != 1) throw std::invalid_argument("tokens must be a 1-D sequence of ids");
        const int64_t n = tokens.shape(0);
        const int64_t vocab = model_.config().n_vocab;
        std::vector<int32_t> ids(tokens.data(), tokens.data() + n);
        // Before sizing the logits by n: a request that cannot fit must not allocate them.
        check_fits(n);
        // The result is allocated before the evaluation (not under the claim: making a Python
        // object may run other Python code), so no failure can follow a successful eval: a
        // call that fails leaves the context as it was.
        py::array_t<float> out = all_logits ? py::array_t<float>({n, vocab}) : py::array_t<float>(vocab);
        float * data = out.mutable_data();
        {
            auto lock = claim();
            check_fits(n);  // again, under the claim
            py::gil_scoped_release release;
            ctx_->eval(ids.data(), n, opts, all_logits, data);
        }
        return out;
    }

    void reset() {
        auto lock = claim();
        ctx_->reset();
    }

    void truncate(int64_t n) {
        auto lock = claim();
        ctx_->truncate(n);
    }

    // Makes the context hold exactly `tokens` (reusing a valid prefix) and returns the last
    // token's logits. Python signals (Ctrl-C) are checked between chunks of n_batch tokens:
    // KeyboardInterrupt then leaves a consistent context of the chunks already evaluated.
    py::array_t<float> prefill(const std::vector<int32_t> & tokens, const RunOptions & opts) {
        const int64_t n = static_cast<int64_t>(tokens.size());
        if (n > ctx_->kv().n_ctx()) {
            throw std::length_error("context overflow: a prompt of " + std::to_string(n) + " tokens > n_ctx " +
                                    std::to_string(ctx_->kv().n_ctx()));
        }
        py::array_t<float> out(static_cast<py::ssize_t>(model_.config().n_vocab));  // before any work, as in eval
        float * data = out.mutable_data();
        {
            auto lock = claim();
            py::gil_scoped_release release;
            ctx_->prefill(tokens.data(), n, opts, data, [] {
                py::gil_scoped_acquire gil;
                if (PyErr_CheckSignals() != 0) throw py::error_already_set();
                return false;
            });
        }
        return out;
    }

    int64_t reused() const { return ctx_->reused(); }

    // Bench hook: Context::bench_fill (the KV cache at a depth without running the model).
    void bench_fill_kv(int64_t n, uint32_t seed) {
        auto lock = claim();
        py::gil_scoped_release release;
        ctx_->bench_fill(n, seed);
    }

    std::vector<int32_t> tokens() const {
        auto lock = claim();
        return ctx_->tokens();
    }

    int last_exit_step() const {
        auto lock = claim();
        const std::vector<int8_t> & s = ctx_->exit_steps();
        if (s.empty()) throw std::invalid_argument("the context is empty");
        return s.back();
    }

    py::array_t<int8_t> exit_steps() const {
        std::vector<int8_t> s;
        {
            auto lock = claim();  // copied under the claim, Python objects made after it
            s = ctx_->exit_steps();
        }
        py::array_t<int8_t> a(static_cast<py::ssize_t>(s.size()));
        if (!s.empty()) std::memcpy(a.mutable_data(), s.data(), s.size());
        return a;
    }

    // Keys and values of one (loop, layer) slot as f32 [n_past, kv_dim]; for tests and debugging.
    // Loop -1 is the last loop's slot, and in the shared mode (kv_share last) the only one.
    py::tuple kv_slot(int loop, int layer) const {
        auto lock = claim();
        const KVCache & kv = ctx_->kv();
        const bool shared = ctx_->kv_share() == KVShare::Last;
        if (loop == -1 && !shared) loop = ctx_->max_loops() - 1;
        if ((shared ? loop != -1 : loop < 0 || loop >= ctx_->max_loops()) || layer < 0 ||
            layer >= model_.config().n_layer) {
            throw std::invalid_argument("no KV slot for loop " + std::to_string(loop) + ", layer " +
                                        std::to_string(layer) +
                                        (shared ? " (kv_share='last' keeps one slot per layer: loop -1)" : ""));
        }
        const int slot = shared ? layer : loop * model_.config().n_layer + layer;
        const int64_t n = ctx_->n_past(), d = kv.kv_dim();
        std::vector<float> k(static_cast<size_t>(n * d)), v(k.size());
        for (int64_t t = 0; t < n; t++) {
            dequantize_row(kv.type_k(), kv.k(slot, t), k.data() + t * d, d);
            dequantize_row(kv.type_v(), kv.v(slot, t), v.data() + t * d, d);
        }
        lock.unlock();  // Python objects after the claim: allocating them may run other threads
        py::array_t<float> ka({n, d}), va({n, d});
        if (!k.empty()) {
            std::memcpy(ka.mutable_data(), k.data(), k.size() * sizeof(float));
            std::memcpy(va.mutable_data(), v.data(), v.size() * sizeof(float));
        }
        return py::make_tuple(ka, va);
    }

    py::dict config() const {
        const Config & c = model_.config();
        py::dict d;
        d["arch"] = c.arch;
        d["n_vocab"] = c.n_vocab;
        d["n_embd"] = c.n_embd;
        d["n_ff"] = c.n_ff;
        d["n_layer"] = c.n_layer;
        d["n_head"] = c.n_head;
        d["n_head_kv"] = c.n_head_kv;
        d["head_dim"] = c.head_dim;
        d["n_ctx_train"] = c.n_ctx_train;
        d["rms_eps"] = c.rms_eps;
        d["rope_theta"] = c.rope_theta;
        d["n_loops_trained"] = c.n_loops;
        d["n_loops"] = load_options_.loops;
        d["max_loops"] = ctx_->max_loops();
        d["has_exit_gate"] = c.has_gate;
        d["exit_threshold_default"] = c.exit_threshold;
        d["n_ctx"] = ctx_->kv().n_ctx();
        d["kv_type"] = kv_dtype_name(ctx_->kv().type_k());  // the key type; type_k / type_v apart
        d["type_k"] = kv_dtype_name(ctx_->kv().type_k());
        d["type_v"] = kv_dtype_name(ctx_->kv().type_v());
        d["kv_share"] = kv_share_name(ctx_->kv_share());
        d["kv_bytes_per_token"] = ctx_->kv_bytes_per_position();
        d["kv_chunk_bytes_per_token"] = ctx_->kv_chunk_bytes_per_position();
        d["n_threads"] = ctx_->n_threads();
        d["kernels"] = ctx_->kernels().name;
        d["weight_type"] = type_name(model_.layers[0].ffn_up.type);
        d["file_size"] = model_.file().file_size();
        d["mmap"] = model_.file().mapped();
        d["mlock"] = model_.file().locked();
        d["mlock_error"] = model_.file().lock_error();
        const RepackedWeights * rp = model_.repacked();  // the x16 copy made at load, if any
        d["repacked_bytes"] = rp ? rp->bytes() : size_t{0};
        d["repack_seconds"] = rp ? rp->seconds() : 0.0;
        return d;
    }

    py::dict metadata() const { return metadata_dict(model_.file(), 4096); }

    const Tokenizer & tok() const {
        if (!model_.vocab.tokenizer)
            throw std::invalid_argument(model_.file().path() + ": the file carries no tokenizer");
        return *model_.vocab.tokenizer;
    }

    std::vector<int32_t> tokenize(const std::string & text, bool special) const {
        const Tokenizer & t = tok();
        py::gil_scoped_release release;
        return t.encode(text, special);
    }

    py::bytes token_bytes(int32_t id) const {
        if (id < 0 || id >= tok().n_vocab())
            throw std::invalid_argument("token id " + std::to_string(id) + " is out of range");
        return py::bytes(tok().token_bytes(id));
    }

    py::bytes detokenize(const std::vector<int32_t> & ids) const {
        const Tokenizer & t = tok();
        for (int32_t id : ids) {
            if (id < 0 || id >= t.n_vocab())
                throw std::invalid_argument("token id " + std::to_string(id) + " is out of range");
        }
        return py::bytes(t.decode(ids));
    }

    py::dict vocab() const {
        const Vocab & v = model_.vocab;
        py::dict d;
        d["has_tokenizer"] = static_cast<bool>(v.tokenizer);
        d["n_tokens"] = v.tokenizer ? v.tokenizer->n_vocab() : 0;
        d["bos"] = v.bos;
        d["eos"] = v.eos;
        d["eot"] = v.eot;
        d["add_bos"] = v.add_bos;
        d["stop_ids"] = v.stop_ids;
        d["chat_template"] = v.chat_template;
        return d;
    }

    int32_t token_type(int32_t id) const { return tok().type(id); }
    int64_t n_past() const { return ctx_->n_past(); }
    size_t kv_bytes() const {
        auto lock = claim();
        return ctx_->kv_bytes();
    }

  private:
    void check_fits(int64_t n) const {
        if (n > ctx_->kv().n_ctx() - ctx_->n_past()) {
            throw std::length_error("context overflow: " + std::to_string(ctx_->n_past()) +
                                    " tokens in the context + " + std::to_string(n) + " new > n_ctx " +
                                    std::to_string(ctx_->kv().n_ctx()));
        }
    }

    // Claims the context for one call without waiting. eval runs without the GIL, so another
    // Python thread may call in meanwhile: it gets this error rather than racing with the
    // eval (readers too: tokens, exit steps and KV pages may be reallocated under them).
    // n_past and config stay plain reads.
    std::unique_lock<std::mutex> claim() const {
        std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
        if (!lock.owns_lock()) throw std::runtime_error("this Model is in use by another thread");
        return lock;
    }

    Model model_;
    RunRequest defaults_;      // the options given at load
    RunOptions load_options_;  // ... resolved
    std::unique_ptr<Context> ctx_;
    mutable std::mutex busy_;
};

}  // namespace

namespace {

// "f32", "f16", "q8_0", "q4_0" -> the cache type; errors name the keyword (kv_type, type_k, type_v).
DType kv_dtype(const std::string & s, const char * what) {
    if (s == "f32") return DType::F32;
    if (s == "f16") return DType::F16;
    if (s == "q8_0") return DType::Q8_0;
    if (s == "q4_0") return DType::Q4_0;
    throw std::invalid_argument(std::string(what) + " must be one of 'f32', 'f16', 'q8_0', 'q4_0', not '" + s + "'");
}

}  // namespace

void KVSettings::apply(ContextParams & p) const {
    p.kv_type = kv_dtype(kv_type, "kv_type");
    if (type_k) p.type_k = kv_dtype(*type_k, "type_k");
    if (type_v) p.type_v = kv_dtype(*type_v, "type_v");
    p.kv_share = parse_kv_share(kv_share);
}

void bind_model(py::module_ & m) {
    // The options of one evaluation, resolved by Model.resolve (valid by construction).
    py::class_<RunOptions>(m, "RunOptions")
        .def_property_readonly("loops", [](const RunOptions & o) { return o.loops; })
        .def_property_readonly("exit_threshold", [](const RunOptions & o) { return o.exit.threshold; })
        .def_property_readonly("exit_mode", [](const RunOptions & o) { return exit_mode_name(o.exit.mode); })
        .def_property_readonly("exit_at_step",
                               [](const RunOptions & o) -> py::object {
                                   if (o.exit.exit_at_step < 0) return py::none();
                                   return py::int_(o.exit.exit_at_step);
                               })
        .def_property_readonly("kv_fill", [](const RunOptions & o) { return kv_fill_name(o.exit.fill); })
        .def("__eq__", [](const RunOptions & a, const RunOptions & b) { return a == b; })
        .def("__repr__", [](const RunOptions & o) {
            return "RunOptions(loops=" + std::to_string(o.loops) +
                   ", exit_threshold=" + std::to_string(o.exit.threshold) + ", exit_mode='" +
                   exit_mode_name(o.exit.mode) + "', exit_at_step=" + std::to_string(o.exit.exit_at_step) +
                   ", kv_fill='" + kv_fill_name(o.exit.fill) + "')";
        });

    py::class_<PyModel>(m, "Model")
        .def(py::init([](const std::string & path, int64_t n_ctx, int n_threads, int loops, const std::string & kv_type,
                         const std::string & kernels, int64_t n_batch, std::optional<int> run_loops,
                         std::optional<double> exit_threshold, std::optional<std::string> exit_mode,
                         std::optional<int> exit_at_step, std::optional<std::string> kv_fill, bool use_mmap,
                         bool use_mlock, std::optional<std::string> type_k, std::optional<std::string> type_v,
                         const std::string & kv_share) {
                 const KVSettings kv{kv_type, type_k, type_v, kv_share};
                 return new PyModel(path, n_ctx, n_threads, loops, kv, kernels, n_batch,
                                    request(run_loops, exit_threshold, exit_mode, exit_at_step, kv_fill), use_mmap,
                                    use_mlock);
             }),
             py::arg("path"), py::arg("n_ctx"), py::arg("n_threads"), py::arg("loops"), py::arg("kv_type"),
             py::arg("kernels"), py::arg("n_batch"), py::kw_only(), py::arg("run_loops") = py::none(),
             py::arg("exit_threshold") = py::none(), py::arg("exit_mode") = py::none(),
             py::arg("exit_at_step") = py::none(), py::arg("kv_fill") = py::none(), py::arg("use_mmap") = true,
             py::arg("use_mlock") = false, py::arg("type_k") = py::none(), py::arg("type_v") = py::none(),
             py::arg("kv_share") = "none")
        .def(
            "resolve",
            [](const PyModel & m, std::optional<int> loops, std::optional<double> exit_threshold,
               std::optional<std::string> exit_mode, std::optional<int> exit_at_step,
               std::optional<std::string> kv_fill) {
                return m.resolve(request(loops, exit_threshold, exit_mode, exit_at_step, kv_fill));
            },
            py::kw_only(), py::arg("loops") = py::none(), py::arg("exit_threshold") = py::none(),
            py::arg("exit_mode") = py::none(), py::arg("exit_at_step") = py::none(), py::arg("kv_fill") = py::none(),
            "The load-time options with the given ones taken over, resolved and validated.")
        .def_property_readonly("load_options", &PyModel::load_options)
        .def("eval", &PyModel::eval, py::arg("tokens"), py::arg("all_logits"), py::arg("options"))
        .def("prefill", &PyModel::prefill, py::arg("tokens"), py::arg("options"))
        .def_property_readonly("reused", &PyModel::reused)
        .def("bench_fill_kv", &PyModel::bench_fill_kv, py::arg("n"), py::arg("seed") = 0,
             "Bench hook: n positions of deterministic K/V in the cache's types, no model run "
             "(csrc/model/kv_cache.h fill_synthetic).")
        .def("reset", &PyModel::reset)
        .def("truncate", &PyModel::truncate)
        .def_property_readonly("tokens", &PyModel::tokens)
        .def("kv_slot", &PyModel::kv_slot)
        .def("tokenize", &PyModel::tokenize, py::arg("text"), py::arg("special"))
        .def("token_bytes", &PyModel::token_bytes)
        .def("detokenize", &PyModel::detokenize)
        .def("token_type", &PyModel::token_type)
        .def_property_readonly("vocab", &PyModel::vocab)
        .def_property_readonly("exit_steps", &PyModel::exit_steps)
        .def_property_readonly("last_exit_step", [](const PyModel & m) { return m.last_exit_step(); })
        .def_property_readonly("config", &PyModel::config)
        .def_property_readonly("metadata", &PyModel::metadata)
        .def_property_readonly("n_past", &PyModel::n_past)
        .def_property_readonly("kv_bytes", &PyModel::kv_bytes);
}

}  // namespace looplm
