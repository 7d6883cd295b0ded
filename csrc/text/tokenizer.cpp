// tokenizer.cpp - byte-level BPE with the "smollm" pre-tokenizer; see tokenizer.h.
#include "text/tokenizer.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "text/unicode_data.h"

namespace looplm {

namespace {

// GPT-2's byte -> code point table: printable Latin-1 bytes stand for themselves, the other 68
// bytes are moved to U+0100.. in byte order so that every byte is a visible character.
struct ByteLevelMap {
    uint32_t byte_to_cp[256];
    int16_t cp_to_byte[324];  // -1 where the code point stands for no byte

    ByteLevelMap() {
        std::fill(cp_to_byte, cp_to_byte + 324, int16_t(-1));
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
            byte_to_cp[b] = printable ? uint32_t(b) : next++;
            cp_to_byte[byte_to_cp[b]] = int16_t(b);
        }
    }
};

const ByteLevelMap & byte_level_map() {
    static const ByteLevelMap map;
    return map;
}

void append_utf8(uint32_t cp, std::string & out) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

// Decodes the well-formed UTF-8 sequence at s[0, n) (n >= 1) into cp and returns its length, or
// returns 0 when s[0] does not start one (overlong forms, surrogates and values above U+10FFFF
// are ill-formed, as are truncated sequences).
size_t decode_utf8(const unsigned char * s, size_t n, uint32_t & cp) {
    unsigned char b0 = s[0];
    if (b0 < 0x80) {
        cp = b0;
        return 1;
    }
    size_t len;
    unsigned char lo = 0x80;
    unsigned char hi = 0xBF;
    if (b0 < 0xC2) {
        return 0;
    } else if (b0 < 0xE0) {
        len = 2;
        cp = b0 & 0x1F;
    } else if (b0 < 0xF0) {
        len = 3;
        cp = b0 & 0x0F;
        lo = b0 == 0xE0 ? 0xA0 : 0x80;
        hi = b0 == 0xED ? 0x9F : 0xBF;
    } else if (b0 < 0xF5) {
        len = 4;
        cp = b0 & 0x07;
        lo = b0 == 0xF0 ? 0x90 : 0x80;
        hi = b0 == 0xF4 ? 0x8F : 0xBF;
    } else {
        return 0;
    }
    if (n < len || s[1] < lo || s[1] > hi) {
        return 0;
    }
    for (size_t k = 1; k < len; ++k) {
        if (k > 1 && (s[k] & 0xC0) != 0x80) {
            return 0;
        }
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    return len;
}

struct CodePoint {
    uint32_t cp;    // an invalid byte b is 0x110000 + b, which is CP_OTHER
    size_t offset;  // byte offset of its first byte, relative to the decoded span
    CodepointClass cls;
};

CodepointClass classify(uint32_t cp) {
    if (cp < 0x80) {
        if ((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z') {
            return CP_LETTER;
        }
        if (cp >= '0' && cp <= '9') {
            return CP_NUMBER;
        }
        return (cp == ' ' || (cp >= 0x09 && cp <= 0x0D)) ? CP_SPACE : CP_OTHER;
    }
    return codepoint_class(cp);
}

// Returns the end of the GPT-2 regex match that starts at cps[i] within the span [i, e), which
// holds no CP_NUMBER (the Digits pre-tokenizer has already isolated every number):
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// with the regex's leftmost alternative winning. The span's end is the end of the input as far
// as the lookahead is concerned.
size_t match_piece(const std::vector<CodePoint> & cps, size_t i, size_t e) {
    uint32_t c = cps[i].cp;
    if (c == '\'' && i + 1 < e) {
        uint32_t c1 = cps[i + 1].cp;
        if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
            return i + 2;
        }
        if (i + 2 < e) {
            uint32_t c2 = cps[i + 2].cp;
            if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
                return i + 3;
            }
        }
    }
    // " ?X+" for X = letter or other: an optional space, then a run of one class.
    size_t k = (c == ' ' && i + 1 < e) ? i + 1 : i;
    CodepointClass cls = cps[k].cls;
    if (cls != CP_SPACE) {
        size_t j = k + 1;
        while (j < e && cps[j].cls == cls) {
            ++j;
        }
        return j;
    }
    // Whitespace: "\s+(?!\S)" leaves the last space of a run that a non-space follows to the
    // next piece, unless the run is one space long, when "\s+" takes it.
    size_t j = i + 1;
    while (j < e && cps[j].cls == CP_SPACE) {
        ++j;
    }
    return (j < e && j - i >= 2) ? j - 1 : j;
}

struct Candidate {
    int32_t rank;
    int32_t pos;                                 // index of the left symbol
    int32_t id;                                  // merged token
    bool operator<(const Candidate & o) const {  // max-heap order: lowest rank, then leftmost, on top
        return rank != o.rank ? rank > o.rank : pos > o.pos;
    }
};

void check_id(int32_t id, int32_t n_vocab) {
    if (id < 0 || id >= n_vocab) {
        throw std::out_of_range("tokenizer: token id " + std::to_string(id) + " is out of range [0, " +
                                std::to_string(n_vocab) + ")");
    }
}

struct Symbol {
    int32_t id;  // -1 once merged into its left neighbour
    int32_t prev;
    int32_t next;  // -1 at the end
};

}  // namespace

Tokenizer::Tokenizer(const std::string & model, const std::string & pre, std::vector<std::string> tokens,
                     std::vector<int32_t> types, const std::vector<std::string> & merges)
    : tokens_(std::move(tokens)), types_(std::move(types)), byte_ids_(256, -1), specials_by_byte_(256) {
    if (model != "gpt2" || pre != "smollm") {
        throw std::invalid_argument("unsupported tokenizer: tokenizer.ggml.model='" + model + "' / pre='" + pre +
                                    "' (looplm supports gpt2 + smollm)");
    }
    if (types_.size() != tokens_.size()) {
        throw std::invalid_argument("tokenizer: " + std::to_string(types_.size()) + " token types for " +
                                    std::to_string(tokens_.size()) + " tokens");
    }
    if (tokens_.size() > size_t(INT32_MAX)) {
        throw std::invalid_argument("tokenizer: vocabulary too large");
    }
    const ByteLevelMap & map = byte_level_map();
    const int32_t n = int32_t(tokens_.size());
    token_to_id_.reserve(tokens_.size());
    bytes_.resize(tokens_.size());
    for (int32_t id = 0; id < n; ++id) {
        const std::string & text = tokens_[id];
        token_to_id_.emplace(text, id);
        int32_t t = types_[id];
        if (t == TOKEN_CONTROL || t == TOKEN_USER_DEFINED) {
            bytes_[id] = text;
            if (!text.empty()) {
                specials_by_byte_[(unsigned char)text[0]].push_back(id);
            }
            continue;
        }
        // Byte-level form back to bytes; a string that is not all byte symbols (never the case in
        // a byte-level vocabulary) stands for itself, as in HF's ByteLevel decoder.
        std::string & out = bytes_[id];
        const unsigned char * s = (const unsigned char *)text.data();
        for (size_t i = 0; i < text.size();) {
            uint32_t cp = 0;
            size_t len = decode_utf8(s + i, text.size() - i, cp);
            if (len == 0 || cp >= 324 || map.cp_to_byte[cp] < 0) {
                out = text;
                break;
            }
            out += char(map.cp_to_byte[cp]);
            i += len;
        }
    }
    for (auto & ids : specials_by_byte_) {
        std::stable_sort(ids.begin(), ids.end(),
                         [this](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });
    }
    // A byte whose symbol is missing (SmolLM2 lacks 21 of them: 6 control characters and bytes
    // that never occur in UTF-8) is dropped by encode(), as HF's BPE without unk_token and
    // llama.cpp do.
    for (int b = 0; b < 256; ++b) {
        std::string symbol;
        append_utf8(map.byte_to_cp[b], symbol);
        byte_ids_[b] = find(symbol);
    }
    merges_.reserve(merges.size());
    for (size_t rank = 0; rank < merges.size(); ++rank) {
        const std::string & m = merges[rank];
        size_t sp = m.find(' ');
        bool two_parts =
            sp != std::string::npos && sp > 0 && sp + 1 < m.size() && m.find(' ', sp + 1) == std::string::npos;
        if (!two_parts) {
            throw std::invalid_argument("tokenizer: merge " + std::to_string(rank) + " ('" + m +
                                        "') is not two space-separated tokens");
        }
        std::string left = m.substr(0, sp);
        std::string right = m.substr(sp + 1);
        int32_t l = find(left);
        int32_t r = find(right);
        int32_t id = find(left + right);
        if (l < 0 || r < 0 || id < 0) {
            throw std::invalid_argument("tokenizer: merge " + std::to_string(rank) + " ('" + m +
                                        "') names a token that is not in the vocabulary");
        }
        // The first (lowest-rank) of duplicate merges wins.
        merges_.emplace((uint64_t(uint32_t(l)) << 32) | uint32_t(r), Merge{int32_t(rank), id});
    }
}

const Tokenizer::Merge * Tokenizer::find_merge(int32_t left, int32_t right) const {
    auto it = merges_.find((uint64_t(uint32_t(left)) << 32) | uint32_t(right));
    return it == merges_.end() ? nullptr : &it->second;
}

std::vector<int32_t> Tokenizer::encode(const std::string & text, bool special) const {
    std::vector<int32_t> out;
    out.reserve(text.size() / 3 + 1);
    size_t plain_begin = 0;
    for (size_t i = 0; i < text.size();) {
        int32_t hit = -1;
        for (int32_t id : specials_by_byte_[(unsigned char)text[i]]) {  // longest first
            const std::string & t = tokens_[id];
            if ((special || types_[id] != TOKEN_CONTROL) && t.size() <= text.size() - i &&
                std::memcmp(text.data() + i, t.data(), t.size()) == 0) {
                hit = id;
                break;
            }
        }
        if (hit < 0) {
            ++i;
            continue;
        }
        encode_text(text, plain_begin, i, out);
        out.push_back(hit);
        i += tokens_[hit].size();
        plain_begin = i;
    }
    encode_text(text, plain_begin, text.size(), out);
    return out;
}

void Tokenizer::encode_text(const std::string & text, size_t begin, size_t end, std::vector<int32_t> & out) const {
    if (begin == end) {
        return;
    }
    const char * base = text.data() + begin;
    const size_t n = end - begin;
    std::vector<CodePoint> cps;
    cps.reserve(n);
    for (size_t i = 0; i < n;) {
        uint32_t cp = 0;
        size_t len = decode_utf8((const unsigned char *)base + i, n - i, cp);
        if (len == 0) {
            cp = 0x110000 + (unsigned char)base[i];
            len = 1;
        }
        cps.push_back(CodePoint{cp, i, classify(cp)});
        i += len;
    }
    auto offset = [&](size_t k) { return k < cps.size() ? cps[k].offset : n; };
    auto emit = [&](size_t a, size_t b) { encode_piece(base + offset(a), offset(b) - offset(a), out); };
    for (size_t i = 0; i < cps.size();) {
        if (cps[i].cls == CP_NUMBER) {  // Digits(individual_digits=true)
            emit(i, i + 1);
            ++i;
            continue;
        }
        size_t e = i;
        while (e < cps.size() && cps[e].cls != CP_NUMBER) {
            ++e;
        }
        while (i < e) {  // the ByteLevel regex, within the span between numbers
            size_t j = match_piece(cps, i, e);
            emit(i, j);
            i = j;
        }
    }
}

// Byte-level BPE of one piece, merging as HF's BPE model does: the pair of lowest rank first,
// the leftmost one among equals.
void Tokenizer::encode_piece(const char * piece, size_t len, std::vector<int32_t> & out) const {
    std::vector<Symbol> syms;
    syms.reserve(len);
    std::vector<Candidate> heap;
    for (size_t i = 0; i < len; ++i) {
        int32_t id = byte_ids_[(unsigned char)piece[i]];
        if (id < 0) {
            continue;  // no symbol for this byte: dropped, its neighbours become adjacent
        }
        int32_t pos = int32_t(syms.size());
        if (pos > 0) {
            syms.back().next = pos;
            if (const Merge * m = find_merge(syms.back().id, id)) {
                heap.push_back(Candidate{m->rank, pos - 1, m->id});
            }
        }
        syms.push_back(Symbol{id, pos - 1, -1});
    }
    if (syms.empty()) {
        return;
    }
    std::make_heap(heap.begin(), heap.end());
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end());
        Candidate top = heap.back();
        heap.pop_back();
        Symbol & left = syms[top.pos];
        if (left.id < 0 || left.next < 0) {
            continue;
        }
        Symbol & right = syms[left.next];
        const Merge * m = find_merge(left.id, right.id);
        if (m == nullptr || m->id != top.id) {  // stale: a neighbour has been merged since
            continue;
        }
        left.id = top.id;
        left.next = right.next;
        right.id = -1;
        if (left.next >= 0) {
            syms[left.next].prev = top.pos;
            if (const Merge * mr = find_merge(left.id, syms[left.next].id)) {
                heap.push_back(Candidate{mr->rank, top.pos, mr->id});
                std::push_heap(heap.begin(), heap.end());
            }
        }
        if (left.prev >= 0) {
            if (const Merge * ml = find_merge(syms[left.prev].id, left.id)) {
                heap.push_back(Candidate{ml->rank, left.prev, ml->id});
                std::push_heap(heap.begin(), heap.end());
            }
        }
    }
    for (int32_t i = 0; i >= 0; i = syms[i].next) {
        out.push_back(syms[i].id);
    }
}

std::string Tokenizer::token_bytes(int32_t id) const {
    check_id(id, n_vocab());
    return bytes_[id];
}

std::string Tokenizer::decode(const std::vector<int32_t> & ids) const {
    std::string out;
    for (int32_t id : ids) {
        check_id(id, n_vocab());
        out += bytes_[id];
    }
    return out;
}

int32_t Tokenizer::n_vocab() const { return int32_t(tokens_.size()); }

int32_t Tokenizer::type(int32_t id) const {
    check_id(id, n_vocab());
    return types_[id];
}

int32_t Tokenizer::find(const std::string & token_text) const {
    auto it = token_to_id_.find(token_text);
    return it == token_to_id_.end() ? -1 : it->second;
}

}  // namespace looplm
