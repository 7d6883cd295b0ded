// python/py_batch.cpp - looplm._core.BatchModel: a loaded model with a BatchContext (several
// sequences stepped together), what looplm serve's batch engine drives. Translation only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "model/batch.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace looplm {

namespace {

class PyBatchModel {
  public:
    PyBatchModel(const std::string & path, int n_seq, int64_t n_ctx, int n_threads, int loops, const KVSettings & kv,
                 const std::string & kernels, bool use_mmap, bool use_mlock)
        : model_(path, use_mmap, use_mlock) {
        ContextParams p;
        p.n_ctx = n_ctx;
        p.n_threads = n_threads;
        p.n_loops = loops;
        kv.apply(p);
        if (!kernels.empty()) p.kernels = &kernel_set(kernels);
        ctx_.reset(new BatchContext(model_, p, n_seq));
    }

    // Steps sequences seqs[i] by tokens[i] with options[i] (ends[i] false: the chunk goes on
    // in the sequence's next step); returns the logits [n, n_vocab] of each item's last token
    // and its exit loop.
    py::tuple step(const std::vector<int> & seqs, const std::vector<std::vector<int32_t>> & tokens,
                   const std::vector<RunOptions> & options, const std::optional<std::vector<bool>> & ends) {
        const size_t n = seqs.size();
        if (tokens.size() != n || options.size() != n || (ends && ends->size() != n)) {
            throw std::invalid_argument("step: seqs, tokens, options and ends must have the same length");
        }
        std::vector<BatchItem> items(n);
        for (size_t i = 0; i < n; i++) {
            items[i].seq = seqs[i];
            items[i].tokens = tokens[i].data();
            items[i].n = static_cast<int64_t>(tokens[i].size());
            items[i].opts = options[i];
            items[i].end_chunk = ends ? (*ends)[i] : true;
        }
        const int64_t vocab = model_.config().n_vocab;
        // The result is made before the step (making a Python object may run Python code, not
        // to be done without the GIL) and written in place.
        py::array_t<float> logits({static_cast<int64_t>(n), vocab});
        float * out = logits.mutable_data();
        std::vector<int> exits(n, 0);
        {
            std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
            if (!lock.owns_lock()) throw std::runtime_error("this BatchModel is in use by another thread");
            py::gil_scoped_release release;
            ctx_->step(items.data(), static_cast<int>(n), out, exits.data());
        }
        return py::make_tuple(logits, exits);
    }

    void reset(int seq) {
        std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
        if (!lock.owns_lock()) throw std::runtime_error("this BatchModel is in use by another thread");
        ctx_->reset(seq);
    }

    int64_t n_past(int seq) const { return ctx_->n_past(seq); }
    int n_seq() const { return ctx_->n_seq(); }
    int64_t n_ctx() const { return ctx_->n_ctx(); }
    int n_threads() const { return ctx_->n_threads(); }
    int max_loops() const { return ctx_->max_loops(); }
    // Bytes the sequence's KV cache holds now (history and chunk).
    size_t kv_bytes(int seq) const { return ctx_->kv(seq).bytes(); }

  private:
    Model model_;
    std::unique_ptr<BatchContext> ctx_;
    std::mutex busy_;
};

}  // namespace

void bind_batch(py::module_ & m) {
    py::class_<PyBatchModel>(m, "BatchModel")
        .def(py::init([](const std::string & path, int n_seq, int64_t n_ctx, int n_threads, int loops,
                         const std::string & kv_type, const std::string & kernels, bool use_mmap, bool use_mlock,
                         const std::optional<std::string> & type_k, const std::optional<std::string> & type_v,
                         const std::string & kv_share) {
                 const KVSettings kv{kv_type, type_k, type_v, kv_share};
                 return new PyBatchModel(path, n_seq, n_ctx, n_threads, loops, kv, kernels, use_mmap, use_mlock);
             }),
             py::arg("path"), py::arg("n_seq"), py::arg("n_ctx"), py::arg("n_threads"), py::arg("loops"),
             py::arg("kv_type"), py::arg("kernels"), py::arg("use_mmap") = true, py::arg("use_mlock") = false,
             py::arg("type_k") = py::none(), py::arg("type_v") = py::none(), py::arg("kv_share") = "none")
        .def("step", &PyBatchModel::step, py::arg("seqs"), py::arg("tokens"), py::arg("options"),
             py::arg("ends") = py::none(),
             "Runs each sequence's tokens in one batch; returns (logits [n, n_vocab], exit loops). ends[i] "
             "False keeps sequence i's chunk open for its next step (kv_share='last': a prompt in parts is one "
             "chunk).")
        .def("reset", &PyBatchModel::reset)
        .def("n_past", &PyBatchModel::n_past)
        .def_property_readonly("n_seq", &PyBatchModel::n_seq)
        .def_property_readonly("n_ctx", &PyBatchModel::n_ctx)
        .def_property_readonly("n_threads", &PyBatchModel::n_threads)
        .def_property_readonly("max_loops", &PyBatchModel::max_loops)
        .def("kv_bytes", &PyBatchModel::kv_bytes);
}

}  // namespace looplm
