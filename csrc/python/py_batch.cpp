// python/py_batch.cpp - looplm._core.BatchModel: a loaded model with a BatchContext (several
// sequences stepped together), what looplm serve's batch engine drives. Translation only.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstring>
#include <memory>
#include <mutex>

#include "model/batch.h"
#include "python/bindings.h"

namespace py = pybind11;

namespace looplm {

namespace {

class PyBatchModel {
  public:
    PyBatchModel(const std::string & path, int n_seq, int64_t n_ctx, int n_threads, int loops,
                 const std::string & kv_type, const std::string & kernels, bool use_mmap, bool use_mlock)
        : model_(path, use_mmap, use_mlock) {
        ContextParams p;
        p.n_ctx = n_ctx;
        p.n_threads = n_threads;
        p.n_loops = loops;
        if (kv_type == "f16")
            p.kv_type = DType::F16;
        else if (kv_type == "f32")
            p.kv_type = DType::F32;
        else
            throw std::invalid_argument("kv_type must be 'f16' or 'f32', not '" + kv_type + "'");
        if (!kernels.empty()) p.kernels = &kernel_set(kernels);
        ctx_.reset(new BatchContext(model_, p, n_seq));
    }

    // Steps sequences seqs[i] by tokens[i] with options[i]; returns the logits [n, n_vocab] of
    // each item's last token and its exit loop.
    py::tuple step(const std::vector<int> & seqs, const std::vector<std::vector<int32_t>> & tokens,
                   const std::vector<RunOptions> & options) {
        const size_t n = seqs.size();
        if (tokens.size() != n || options.size() != n) {
            throw std::invalid_argument("step: seqs, tokens and options must have the same length");
        }
        std::vector<BatchItem> items(n);
        for (size_t i = 0; i < n; i++) {
            items[i].seq = seqs[i];
            items[i].tokens = tokens[i].data();
            items[i].n = static_cast<int64_t>(tokens[i].size());
            items[i].opts = options[i];
        }
        const int64_t vocab = model_.config().n_vocab;
        std::vector<float> logits;
        std::vector<int> exits(n, 0);
        {
            std::unique_lock<std::mutex> lock(busy_, std::try_to_lock);
            if (!lock.owns_lock()) throw std::runtime_error("this BatchModel is in use by another thread");
            logits.resize(n * static_cast<size_t>(vocab));
            py::gil_scoped_release release;
            ctx_->step(items.data(), static_cast<int>(n), logits.data(), exits.data());
        }
        py::array_t<float> a({static_cast<int64_t>(n), vocab});
        std::memcpy(a.mutable_data(), logits.data(), logits.size() * sizeof(float));
        return py::make_tuple(a, exits);
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

  private:
    Model model_;
    std::unique_ptr<BatchContext> ctx_;
    std::mutex busy_;
};

}  // namespace

void bind_batch(py::module_ & m) {
    py::class_<PyBatchModel>(m, "BatchModel")
        .def(py::init<const std::string &, int, int64_t, int, int, const std::string &, const std::string &, bool,
                      bool>(),
             py::arg("path"), py::arg("n_seq"), py::arg("n_ctx"), py::arg("n_threads"), py::arg("loops"),
             py::arg("kv_type"), py::arg("kernels"), py::arg("use_mmap") = true, py::arg("use_mlock") = false)
        .def("step", &PyBatchModel::step, py::arg("seqs"), py::arg("tokens"), py::arg("options"),
             "Runs each sequence's tokens in one batch; returns (logits [n, n_vocab], exit loops).")
        .def("reset", &PyBatchModel::reset)
        .def("n_past", &PyBatchModel::n_past)
        .def_property_readonly("n_seq", &PyBatchModel::n_seq)
        .def_property_readonly("n_ctx", &PyBatchModel::n_ctx)
        .def_property_readonly("n_threads", &PyBatchModel::n_threads);
}

}  // namespace looplm
