// gguf.cpp - GGUF parsing and validation over a read-only mmap.
#include "gguf/gguf.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>

#include "quant/traits.h"

namespace looplm {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" little-endian
constexpr size_t kMaxName = 63;          // ggml's GGML_MAX_NAME - 1
constexpr uint64_t kMaxKey = 65535;      // the GGUF spec's limit on a key's length
constexpr size_t kMaxMessage = 2048;     // bytes of an error message after the path

size_t scalar_size(GGUFType t) {
    switch (t) {
        case GGUFType::U8:
        case GGUFType::I8:
        case GGUFType::BOOL: return 1;
        case GGUFType::U16:
        case GGUFType::I16: return 2;
        case GGUFType::U32:
        case GGUFType::I32:
        case GGUFType::F32: return 4;
        case GGUFType::U64:
        case GGUFType::I64:
        case GGUFType::F64: return 8;
        default: return 0;  // string, array: variable
    }
}

bool valid_type(uint32_t t) { return t <= static_cast<uint32_t>(GGUFType::F64); }

// Length of the well-formed UTF-8 sequence at s[0, n), 0 when there is none there.
size_t utf8_len(const unsigned char * s, size_t n) {
    const unsigned c = s[0];
    if (c < 0x80) return 1;
    size_t len = 0;
    uint32_t cp = 0;
    if (c >= 0xc2 && c <= 0xdf) {
        len = 2, cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, cp = c & 0x07;
    } else {
        return 0;
    }
    if (n < len) return 0;
    for (size_t k = 1; k < len; k++) {
        if ((s[k] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (s[k] & 0x3f);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
        return 0;  // overlong, beyond Unicode, or a surrogate
    }
    return len;
}

// s with every byte that is not part of well-formed UTF-8 (and, when `controls`, every
// ASCII control character) written as \xNN: always valid UTF-8, so Python can decode it.
std::string escape(const std::string & s, bool controls) {
    std::string out;
    const unsigned char * p = reinterpret_cast<const unsigned char *>(s.data());
    for (size_t i = 0; i < s.size();) {
        const size_t len = utf8_len(p + i, s.size() - i);
        if (len == 0 || (controls && len == 1 && (p[i] < 0x20 || p[i] == 0x7f))) {
            char buf[8];
            std::snprintf(buf, sizeof buf, "\\x%02x", p[i]);
            out += buf;
            i++;
        } else {
            out.append(s, i, len);
            i += len;
        }
    }
    return out;
}

bool printable_ascii(const std::string & s) {
    for (unsigned char ch : s) {
        if (ch < 0x20 || ch > 0x7e) return false;
    }
    return true;
}

template <typename T>
T load(const uint8_t * p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
}

// Bounds-checked cursor over the mapping; every read names what it was reading on failure.
struct Cursor {
    const GGUFFile & file;
    const uint8_t * base;
    uint64_t size;
    uint64_t pos;

    void need(uint64_t n, const std::string & what) const {
        if (n > size - pos) {
            file.fail("truncated while reading " + what + " at byte " + std::to_string(pos) + " (needs " +
                      std::to_string(n) + " bytes, " + std::to_string(size - pos) + " left)");
        }
    }
    template <typename T>
    T read(const std::string & what) {
        need(sizeof(T), what);
        T v = load<T>(base + pos);
        pos += sizeof(T);
        return v;
    }
    std::string read_string(const std::string & what) {
        const uint64_t len = read<uint64_t>(what + " length");
        need(len, what);
        std::string s(reinterpret_cast<const char *>(base + pos), static_cast<size_t>(len));
        pos += len;
        return s;
    }
    // Skips over a value of type t, checking its extent; returns where its payload starts.
    GGUFValue read_value(GGUFType t, const std::string & key) {
        GGUFValue v;
        v.type = t;
        if (t == GGUFType::STRING) {
            v.count = read<uint64_t>("string length of key '" + key + "'");
            need(v.count, "string value of key '" + key + "'");
            v.data = base + pos;
            pos += v.count;
            return v;
        }
        if (t == GGUFType::ARRAY) {
            const uint32_t et = read<uint32_t>("array type of key '" + key + "'");
            if (!valid_type(et)) {
                file.fail("key '" + key + "': unknown array element type " + std::to_string(et));
            }
            v.elem_type = static_cast<GGUFType>(et);
            if (v.elem_type == GGUFType::ARRAY) file.fail("key '" + key + "': nested arrays");
            v.count = read<uint64_t>("array length of key '" + key + "'");
            v.data = base + pos;
            const size_t es = scalar_size(v.elem_type);
            if (es != 0) {
                if (v.count > (size - pos) / es) {
                    file.fail("key '" + key + "': array of " + std::to_string(v.count) +
                              " elements runs past the end of the file");
                }
                pos += v.count * es;
            } else {  // strings: each at least 8 bytes, then walk them
                if (v.count > (size - pos) / 8) {
                    file.fail("key '" + key + "': string array of " + std::to_string(v.count) +
                              " elements runs past the end of the file");
                }
                for (uint64_t i = 0; i < v.count; i++) {
                    const uint64_t len = read<uint64_t>("string " + std::to_string(i) + " of key '" + key + "'");
                    need(len, "string " + std::to_string(i) + " of key '" + key + "'");
                    pos += len;
                }
            }
            return v;
        }
        const size_t es = scalar_size(t);
        need(es, "value of key '" + key + "'");
        v.data = base + pos;
        pos += es;
        return v;
    }
};

}  // namespace

const char * gguf_type_name(GGUFType t) {
    static const char * names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                   "bool", "string", "array", "u64", "i64", "f64"};
    const uint32_t i = static_cast<uint32_t>(t);
    return i < 13 ? names[i] : "unknown";
}

std::string GGUFTensor::shape_str() const {
    std::string s = "[";
    for (int i = 0; i < n_dims; i++) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

GGUFFile::GGUFFile(const std::string & path, bool use_mmap, bool use_mlock) : path_(path) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);  // a FIFO must not block us
    if (fd_ < 0) fail(std::string("cannot open: ") + std::strerror(errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || !S_ISREG(st.st_mode)) {
        ::close(fd_);
        fd_ = -1;
        fail("not a regular file");
    }
    size_ = static_cast<uint64_t>(st.st_size);
    if (size_ < 24) {
        ::close(fd_);
        fd_ = -1;
        fail("too small to be a GGUF file (" + std::to_string(size_) + " bytes)");
    }
#ifdef LOOPLM_GGUF_HEAP_COPY
    // Sanitizer and fuzzing builds (csrc/tests/CMakeLists.txt): an exact-size heap copy, so
    // AddressSanitizer reports a read even one byte past the end of the file; past the end
    // of a mapping, a read faults only beyond the last page.
    (void)use_mmap;
    mapped_ = false;
    uint8_t * buf = new uint8_t[size_];
    for (uint64_t done = 0; done < size_;) {
        const ssize_t n = ::pread(fd_, buf + done, size_ - done, static_cast<off_t>(done));
        if (n <= 0) {
            delete[] buf;
            ::close(fd_);
            fd_ = -1;
            fail("cannot read the file");
        }
        done += static_cast<uint64_t>(n);
    }
    base_ = buf;
#else
    if (use_mmap) {
        void * p = ::mmap(nullptr, size_, PROT_READ, MAP_SHARED, fd_, 0);
        if (p == MAP_FAILED) {
            ::close(fd_);
            fd_ = -1;
            fail(std::string("mmap failed: ") + std::strerror(errno));
        }
        base_ = static_cast<const uint8_t *>(p);
    } else {
        read_into_memory();
    }
#endif
    try {
        parse();
    } catch (...) {
        unmap();
        throw;
    }
    if (use_mlock) {
        if (::mlock(base_, size_) == 0) {
            locked_ = true;
        } else {
            lock_error_ = std::string("mlock failed: ") + std::strerror(errno) +
                          " (raise the locked-memory limit, e.g. ulimit -l)";
        }
    }
}

// --no-mmap: the file's bytes in page-aligned anonymous memory (private to this process,
// counted in its RSS), read-only once filled. Freed by munmap like a mapping.
void GGUFFile::read_into_memory() {
    mapped_ = false;
    void * p = ::mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        ::close(fd_);
        fd_ = -1;
        fail("cannot allocate " + std::to_string(size_) + " bytes to read the file: " + std::strerror(errno));
    }
    uint8_t * buf = static_cast<uint8_t *>(p);
    for (uint64_t done = 0; done < size_;) {
        const ssize_t n = ::pread(fd_, buf + done, size_ - done, static_cast<off_t>(done));
        if (n <= 0) {
            const std::string why = n < 0 ? std::strerror(errno) : "unexpected end of file";
            ::munmap(p, size_);
            ::close(fd_);
            fd_ = -1;
            fail("cannot read the file: " + why);
        }
        done += static_cast<uint64_t>(n);
    }
    ::mprotect(p, size_, PROT_READ);
    base_ = buf;
}

void GGUFFile::unmap() {
#ifdef LOOPLM_GGUF_HEAP_COPY
    delete[] base_;
#else
    if (base_) ::munmap(const_cast<uint8_t *>(base_), size_);
#endif
    if (fd_ >= 0) ::close(fd_);
    base_ = nullptr;
    fd_ = -1;
}

GGUFFile::~GGUFFile() { unmap(); }

void GGUFFile::fail(const std::string & what) const {
    // Python turns the message into a str: it must be valid UTF-8, whatever the file holds.
    const bool cut = what.size() > kMaxMessage;
    throw GGUFError(escape(path_ + ": " + (cut ? what.substr(0, kMaxMessage) + " ..." : what), false));
}

std::string GGUFFile::quote(const std::string & s, size_t max_bytes) {
    const bool cut = s.size() > max_bytes;
    return "'" + escape(cut ? s.substr(0, max_bytes) : s, true) + (cut ? "'..." : "'");
}

void GGUFFile::parse() {
    Cursor c{*this, base_, size_, 0};
    const uint32_t magic = c.read<uint32_t>("magic");
    if (magic != kMagic) fail("not a GGUF file (bad magic)");
    version_ = c.read<uint32_t>("version");
    if ((version_ & 0xffff) == 0 && version_ != 0) fail("big-endian GGUF files are not supported");
    if (version_ < 2 || version_ > 3) {
        fail("unsupported GGUF version " + std::to_string(version_) + " (2 and 3 are)");
    }
    const uint64_t n_tensors = c.read<uint64_t>("tensor count");
    const uint64_t n_kv = c.read<uint64_t>("metadata count");
    // Each KV needs >= 13 bytes (key length, type, 1-byte value); each tensor info >= 32.
    if (n_kv > (size_ - c.pos) / 13)
        fail("metadata count " + std::to_string(n_kv) + " is impossible for the file size");
    if (n_tensors > (size_ - c.pos) / 32)
        fail("tensor count " + std::to_string(n_tensors) + " is impossible for the file size");

    uint64_t pos = read_metadata(c.pos, n_kv);
    read_alignment();
    pos = read_tensor_infos(pos, n_tensors);
    place_tensors(pos);
}

uint64_t GGUFFile::read_metadata(uint64_t pos, uint64_t n_kv) {
    Cursor c{*this, base_, size_, pos};
    for (uint64_t i = 0; i < n_kv; i++) {
        std::string key = c.read_string("key of metadata entry " + std::to_string(i));
        if (key.empty()) fail("metadata entry " + std::to_string(i) + " has an empty key");
        if (key.size() > kMaxKey || !printable_ascii(key)) {
            fail("metadata entry " + std::to_string(i) + " has an invalid key " + quote(key) + " (" +
                 std::to_string(key.size()) + " bytes; keys are printable ASCII, at most 65535 bytes)");
        }
        const uint32_t t = c.read<uint32_t>("type of key '" + key + "'");
        if (!valid_type(t)) fail("key '" + key + "': unknown value type " + std::to_string(t));
        GGUFValue v = c.read_value(static_cast<GGUFType>(t), key);
        if (!kv_.emplace(key, v).second) fail("duplicate key '" + key + "'");
        key_order_.push_back(std::move(key));
    }
    return c.pos;
}

void GGUFFile::read_alignment() {
    if (const GGUFValue * a = find("general.alignment")) {
        if (a->type != GGUFType::U32) fail("key 'general.alignment' must be u32");
        alignment_ = load<uint32_t>(a->data);
        if (alignment_ == 0 || (alignment_ & (alignment_ - 1)) != 0) {
            fail("general.alignment " + std::to_string(alignment_) + " is not a power of two");
        }
    }
}

uint64_t GGUFFile::read_tensor_infos(uint64_t pos, uint64_t n_tensors) {
    Cursor c{*this, base_, size_, pos};
    // No reserve(n_tensors): the count is only known to fit the file, and a tensor record
    // is larger in memory than its 33 bytes on disk.
    for (uint64_t i = 0; i < n_tensors; i++) {
        GGUFTensor t;
        t.name = c.read_string("name of tensor " + std::to_string(i));
        if (t.name.empty() || t.name.size() > kMaxName) {
            fail("tensor " + std::to_string(i) + " has an empty or too long name (" + std::to_string(t.name.size()) +
                 " bytes, the limit is 63)");
        }
        if (escape(t.name, true) != t.name) {
            fail("tensor " + std::to_string(i) + " has a name that is not UTF-8 text: " + quote(t.name));
        }
        const std::string tn = "tensor '" + t.name + "'";
        const uint32_t n_dims = c.read<uint32_t>("dimension count of " + tn);
        if (n_dims < 1 || n_dims > 4) fail(tn + " has " + std::to_string(n_dims) + " dimensions (1..4 allowed)");
        t.n_dims = static_cast<int>(n_dims);
        int64_t nel = 1;
        for (uint32_t d = 0; d < n_dims; d++) {
            const uint64_t ne = c.read<uint64_t>("shape of " + tn);
            if (ne == 0 || ne > static_cast<uint64_t>(INT64_MAX))
                fail(tn + " has an invalid dimension " + std::to_string(ne));
            t.ne[d] = static_cast<int64_t>(ne);
            if (__builtin_mul_overflow(nel, t.ne[d], &nel)) fail(tn + ": element count overflows");
        }
        const uint32_t type = c.read<uint32_t>("type of " + tn);
        const TypeTraits * ti = find_traits(type);
        if (!ti) fail(tn + " has unknown type id " + std::to_string(type));
        t.type = static_cast<DType>(type);
        if (t.ne[0] % ti->block_elems != 0) {
            fail(tn + ": row length " + std::to_string(t.ne[0]) + " is not a multiple of the " + ti->name +
                 " block size " + std::to_string(ti->block_elems));
        }
        int64_t nb = 0;
        if (__builtin_mul_overflow(nel / ti->block_elems, ti->block_bytes, &nb)) fail(tn + ": byte size overflows");
        t.nbytes = static_cast<uint64_t>(nb);
        t.offset = c.read<uint64_t>("offset of " + tn);
        if (!tensor_index_.emplace(t.name, tensors_.size()).second) fail("duplicate " + tn);
        tensors_.push_back(std::move(t));
    }
    return c.pos;
}

// The data section starts at the first aligned offset after the tensor table (end); every
// tensor must lie inside it, aligned, and no two may overlap.
void GGUFFile::place_tensors(uint64_t end) {
    data_offset_ = (end + alignment_ - 1) / alignment_ * alignment_;
    if (!tensors_.empty() && data_offset_ > size_) fail("data section starts past the end of the file");
    const uint64_t data_size = size_ - std::min(data_offset_, size_);

    std::vector<const GGUFTensor *> by_offset;
    for (GGUFTensor & t : tensors_) {
        const std::string tn = "tensor '" + t.name + "'";
        if (t.offset % alignment_ != 0)
            fail(tn + ": offset " + std::to_string(t.offset) + " is not aligned to " + std::to_string(alignment_));
        if (t.offset > data_size || t.nbytes > data_size - t.offset) {
            fail(tn + ": data [" + std::to_string(t.offset) + ", +" + std::to_string(t.nbytes) +
                 ") lies outside the data section (" + std::to_string(data_size) + " bytes)");
        }
        t.data = base_ + data_offset_ + t.offset;
        by_offset.push_back(&t);
    }
    std::sort(by_offset.begin(), by_offset.end(),
              [](const GGUFTensor * a, const GGUFTensor * b) { return a->offset < b->offset; });
    for (size_t i = 1; i < by_offset.size(); i++) {
        const GGUFTensor * a = by_offset[i - 1];
        const GGUFTensor * b = by_offset[i];
        if (a->offset + a->nbytes > b->offset) fail("tensors '" + a->name + "' and '" + b->name + "' overlap");
    }
}

const GGUFValue * GGUFFile::find(const std::string & key) const {
    auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
}

const GGUFTensor * GGUFFile::tensor(const std::string & name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

namespace {

bool int_value(GGUFType t, const uint8_t * p, int64_t & out, uint64_t & uout, bool & is_unsigned) {
    is_unsigned = false;
    switch (t) {
        case GGUFType::U8: out = load<uint8_t>(p); return true;
        case GGUFType::I8: out = load<int8_t>(p); return true;
        case GGUFType::U16: out = load<uint16_t>(p); return true;
        case GGUFType::I16: out = load<int16_t>(p); return true;
        case GGUFType::U32: out = load<uint32_t>(p); return true;
        case GGUFType::I32: out = load<int32_t>(p); return true;
        case GGUFType::I64: out = load<int64_t>(p); return true;
        case GGUFType::U64:
            uout = load<uint64_t>(p);
            is_unsigned = true;
            return true;
        default: return false;
    }
}

}  // namespace

uint64_t GGUFFile::get_uint(const std::string & key) const {
    const GGUFValue * v = find(key);
    if (!v) fail("missing required key '" + key + "'");
    int64_t s = 0;
    uint64_t u = 0;
    bool is_u = false;
    if (!int_value(v->type, v->data, s, u, is_u)) {
        fail("key '" + key + "' has type " + gguf_type_name(v->type) + ", expected an integer");
    }
    if (is_u) return u;
    if (s < 0) fail("key '" + key + "' is negative (" + std::to_string(s) + ")");
    return static_cast<uint64_t>(s);
}

uint64_t GGUFFile::get_uint(const std::string & key, uint64_t def) const { return has(key) ? get_uint(key) : def; }

double GGUFFile::get_float(const std::string & key) const {
    const GGUFValue * v = find(key);
    if (!v) fail("missing required key '" + key + "'");
    if (v->type == GGUFType::F32) return load<float>(v->data);
    if (v->type == GGUFType::F64) return load<double>(v->data);
    fail("key '" + key + "' has type " + gguf_type_name(v->type) + ", expected f32");
}

double GGUFFile::get_float(const std::string & key, double def) const { return has(key) ? get_float(key) : def; }

bool GGUFFile::get_bool(const std::string & key, bool def) const {
    const GGUFValue * v = find(key);
    if (!v) return def;
    if (v->type != GGUFType::BOOL) fail("key '" + key + "' has type " + gguf_type_name(v->type) + ", expected bool");
    return v->data[0] != 0;
}

std::string GGUFFile::get_string(const std::string & key) const {
    const GGUFValue * v = find(key);
    if (!v) fail("missing required key '" + key + "'");
    if (v->type != GGUFType::STRING)
        fail("key '" + key + "' has type " + gguf_type_name(v->type) + ", expected string");
    return string_at(*v, 0);
}

std::string GGUFFile::get_string(const std::string & key, const std::string & def) const {
    return has(key) ? get_string(key) : def;
}

std::string GGUFFile::string_at(const GGUFValue & v, uint64_t i) {
    if (v.type == GGUFType::STRING) return std::string(reinterpret_cast<const char *>(v.data), v.count);
    const uint8_t * p = v.data;  // extents were validated while parsing
    for (uint64_t k = 0; k < i; k++) p += 8 + load<uint64_t>(p);
    const uint64_t len = load<uint64_t>(p);
    return std::string(reinterpret_cast<const char *>(p + 8), len);
}

std::vector<std::string> GGUFFile::get_string_array(const std::string & key) const {
    const GGUFValue * v = find(key);
    if (!v) fail("missing required key '" + key + "'");
    if (v->type != GGUFType::ARRAY || v->elem_type != GGUFType::STRING) {
        fail("key '" + key + "' must be an array of strings");
    }
    std::vector<std::string> out;
    out.reserve(static_cast<size_t>(v->count));
    const uint8_t * p = v->data;
    for (uint64_t i = 0; i < v->count; i++) {
        const uint64_t len = load<uint64_t>(p);
        out.emplace_back(reinterpret_cast<const char *>(p + 8), len);
        p += 8 + len;
    }
    return out;
}

std::vector<float> GGUFFile::get_float_array(const std::string & key) const {
    const GGUFValue * v = find(key);
    if (!v) fail("missing required key '" + key + "'");
    if (v->type != GGUFType::ARRAY || (v->elem_type != GGUFType::F32 && v->elem_type != GGUFType::F64)) {
        fail("key '" + key + "' must be an array of f32");
    }
    std::vector<float> out(static_cast<size_t>(v->count));
    for (uint64_t i = 0; i < v->count; i++) {
        out[i] = v->elem_type == GGUFType::F32 ? load<float>(v->data + 4 * i)
                                               : static_cast<float>(load<double>(v->data + 8 * i));
    }
    return out;
}

std::vector<int64_t> GGUFFile::get_int_array(const std::string & key) const {
    const GGUFValue * v = find(key);
    if (!v) fail("missing required key '" + key + "'");
    const size_t es = v->type == GGUFType::ARRAY ? scalar_size(v->elem_type) : 0;
    if (es == 0 || v->elem_type == GGUFType::F32 || v->elem_type == GGUFType::F64 || v->elem_type == GGUFType::BOOL) {
        fail("key '" + key + "' must be an array of integers");
    }
    std::vector<int64_t> out(static_cast<size_t>(v->count));
    for (uint64_t i = 0; i < v->count; i++) {
        int64_t s = 0;
        uint64_t u = 0;
        bool is_u = false;
        int_value(v->elem_type, v->data + es * i, s, u, is_u);
        out[i] = is_u ? static_cast<int64_t>(u) : s;
    }
    return out;
}

}  // namespace looplm
