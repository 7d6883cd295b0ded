// tokenizer.h - byte-level BPE tokenizer (GGUF "gpt2" model, "smollm" pre-tokenizer).
//
// Matches HF tokenizers' BPE + Sequence[Digits(individual_digits), ByteLevel] token for token:
// special tokens are split off first, every Unicode number is isolated, the GPT-2 regex splits
// the rest, and merges are applied by rank within each piece. Knows nothing about models.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

namespace looplm {

// GGUF token types (tokenizer.ggml.token_type)
enum TokenType : int32_t {
    TOKEN_NORMAL = 1,
    TOKEN_UNKNOWN = 2,
    TOKEN_CONTROL = 3,
    TOKEN_USER_DEFINED = 4,
    TOKEN_UNUSED = 5,
    TOKEN_BYTE = 6,
};

class Tokenizer {
  public:
    // tokens: vocabulary in GPT-2 byte-level form ("Ġ" = space byte), types: one per token,
    // merges: "left right" pairs in rank order; model must be "gpt2" and pre "smollm",
    // otherwise throws std::invalid_argument("unsupported tokenizer: tokenizer.ggml.model='...'
    // / pre='...' (looplm supports gpt2 + smollm)"). Also throws for inconsistent input (types
    // size != tokens size, a merge that is not two space-separated vocabulary entries whose
    // concatenation is one too).
    Tokenizer(const std::string & model, const std::string & pre, std::vector<std::string> tokens,
              std::vector<int32_t> types, const std::vector<std::string> & merges);

    // Text (UTF-8) -> ids. special=true: the texts of CONTROL tokens are matched as whole tokens
    // (as llama.cpp's parse_special and HF tokenizers' default do); USER_DEFINED tokens are
    // always matched; special=false: control-token texts are tokenized as plain text. Where
    // several match at one position the longest wins. No BOS is added. Invalid UTF-8 bytes are
    // pre-tokenized as punctuation and encoded like any byte. A byte whose byte-level symbol is
    // not in the vocabulary is dropped, as HF and llama.cpp do (SmolLM2 lacks \x04 \x06 \x13
    // \x14 \x16 \x1d \xc0 \xc1 \xf5-\xff), so only text without such bytes round-trips.
    // Thread-safe: no mutable state.
    std::vector<int32_t> encode(const std::string & text, bool special) const;

    // Raw bytes of one token: byte-level tokens are mapped back to bytes; CONTROL/USER_DEFINED
    // tokens give their text. Throws std::out_of_range for a bad id.
    std::string token_bytes(int32_t id) const;
    std::string decode(const std::vector<int32_t> & ids) const;  // concatenated token_bytes
    int32_t n_vocab() const;
    int32_t type(int32_t id) const;                      // throws std::out_of_range for a bad id
    int32_t find(const std::string & token_text) const;  // id whose vocabulary string equals token_text, or -1

  private:
    struct Merge {
        int32_t rank;
        int32_t id;  // the merged token
    };

    // Appends the ids of text[begin, end), which holds no special token, to out.
    void encode_text(const std::string & text, size_t begin, size_t end, std::vector<int32_t> & out) const;
    // Appends the BPE ids of one pre-tokenized piece to out.
    void encode_piece(const char * piece, size_t len, std::vector<int32_t> & out) const;
    const Merge * find_merge(int32_t left, int32_t right) const;

    std::vector<std::string> tokens_;
    std::vector<int32_t> types_;
    std::vector<std::string> bytes_;                        // token_bytes() of every id
    std::unordered_map<std::string, int32_t> token_to_id_;  // first id of each string
    std::unordered_map<uint64_t, Merge> merges_;            // (left << 32 | right) -> merge
    std::vector<int32_t> byte_ids_;                         // id of the single-byte token of each byte value
    std::vector<std::vector<int32_t>> specials_by_byte_;    // matchable specials by first byte, longest first
};

}  // namespace looplm
