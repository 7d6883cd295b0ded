// gguf.h - a memory-mapped, fully validated GGUF v2/v3 reader. Knows nothing about models.
//
// Every count, length, offset, type and size is checked against the file before it is
// used, so a hostile file ends in a GGUFError naming the file and the fault, never in a
// read past the mapping or an allocation sized by the file.
#pragma once

#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

#include "quant/types.h"

namespace looplm {

struct GGUFError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

enum class GGUFType : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    BOOL = 7,
    STRING = 8,
    ARRAY = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
};
const char * gguf_type_name(GGUFType t);

// One metadata value, pointing into the mapping.
struct GGUFValue {
    GGUFType type = GGUFType::U8;
    GGUFType elem_type = GGUFType::U8;  // arrays only
    uint64_t count = 0;                 // arrays: elements; strings: bytes
    const uint8_t * data = nullptr;     // scalar bytes, string bytes, or first array element
};

struct GGUFTensor {
    std::string name;
    DType type = DType::F32;
    int n_dims = 0;
    int64_t ne[4] = {1, 1, 1, 1};  // innermost first (ne[0] = row length)
    uint64_t offset = 0;           // relative to the data section
    uint64_t nbytes = 0;
    const uint8_t * data = nullptr;

    int64_t nelements() const { return ne[0] * ne[1] * ne[2] * ne[3]; }
    int64_t nrows() const { return ne[1] * ne[2] * ne[3]; }
    std::string shape_str() const;  // "[2048, 5632]" in GGUF (ne) order
};

class GGUFFile {
  public:
    // use_mmap = false reads the whole file into anonymous memory instead of mapping it
    // (llama.cpp's --no-mmap); use_mlock locks the pages in RAM (--mlock). A lock the system
    // refuses (RLIMIT_MEMLOCK) is no error: locked() is false and lock_error() says why.
    explicit GGUFFile(const std::string & path, bool use_mmap = true, bool use_mlock = false);
    ~GGUFFile();
    GGUFFile(const GGUFFile &) = delete;
    GGUFFile & operator=(const GGUFFile &) = delete;

    const std::string & path() const { return path_; }
    uint32_t version() const { return version_; }
    uint64_t file_size() const { return size_; }
    uint64_t data_offset() const { return data_offset_; }
    uint32_t alignment() const { return alignment_; }
    bool mapped() const { return mapped_; }
    bool locked() const { return locked_; }
    const std::string & lock_error() const { return lock_error_; }

    // Metadata: lookup returns nullptr when absent; typed getters throw GGUFError naming the
    // key when it is absent (required) or of the wrong type.
    const GGUFValue * find(const std::string & key) const;
    const std::vector<std::string> & keys() const { return key_order_; }
    bool has(const std::string & key) const { return find(key) != nullptr; }
    uint64_t get_uint(const std::string & key) const;  // any integer type, must be >= 0
    uint64_t get_uint(const std::string & key, uint64_t def) const;
    double get_float(const std::string & key) const;  // f32 or f64
    double get_float(const std::string & key, double def) const;
    bool get_bool(const std::string & key, bool def) const;
    std::string get_string(const std::string & key) const;
    std::string get_string(const std::string & key, const std::string & def) const;
    std::vector<std::string> get_string_array(const std::string & key) const;
    std::vector<float> get_float_array(const std::string & key) const;
    std::vector<int64_t> get_int_array(const std::string & key) const;

    // Decodes a string value or the i-th element of a string array (i < count).
    static std::string string_at(const GGUFValue & v, uint64_t i);

    // A string from the file made safe for an error message: in single quotes, control
    // characters and bytes that are not UTF-8 escaped as \xNN, cut after max_bytes.
    static std::string quote(const std::string & s, size_t max_bytes = 80);

    const std::vector<GGUFTensor> & tensors() const { return tensors_; }
    const GGUFTensor * tensor(const std::string & name) const;  // nullptr when absent

    // Throws GGUFError("<path>: <what>"); what is made valid UTF-8 and at most ~2 KB long.
    [[noreturn]] void fail(const std::string & what) const;

  private:
    void parse();                                         // the header's counts, then the steps below in file order
    uint64_t read_metadata(uint64_t pos, uint64_t n_kv);  // returns the position after it
    void read_alignment();
    uint64_t read_tensor_infos(uint64_t pos, uint64_t n_tensors);
    void place_tensors(uint64_t end);
    void read_into_memory();
    void unmap();

    std::string path_;
    int fd_ = -1;
    const uint8_t * base_ = nullptr;
    uint64_t size_ = 0;
    uint32_t version_ = 0;
    uint32_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    bool mapped_ = true;
    bool locked_ = false;
    std::string lock_error_;
    std::map<std::string, GGUFValue> kv_;
    std::vector<std::string> key_order_;
    std::vector<GGUFTensor> tensors_;
    std::map<std::string, size_t> tensor_index_;
};

}  // namespace looplm
