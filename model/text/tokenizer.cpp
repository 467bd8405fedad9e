#include "model/text/tokenizer.h"

#include <sys/stat.h>

#include <locale>
#include <regex>

#include "common/error.h"
#include "model/text/sentencepiece_shim.h"

namespace lit::text {

// A SentencePiece processor of the module (sentencepiece_shim.h), freed with the last tokenizer copy.
struct T5Tokenizer::Impl {
  const SentencePieceApi* api = nullptr;
  void* processor = nullptr;
  ~Impl() {
    if (processor) api->destroy(processor);
  }
  std::vector<int> ids(const std::string& text, const std::string& path) const {
    std::vector<int> out;
    std::string error;
    if (!api->encode_ids(processor, text, &out, &error))
      throw Error(path + ": cannot tokenize a prompt (" + error + ")");
    return out;
  }
};

namespace {

bool is_regular_file(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode);
}

// UTF-8 decoding of one code point at s[i]; returns its byte length, or 0 for a malformed sequence.
size_t decode_utf8(const std::string& s, size_t i, char32_t* cp) {
  const auto b = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  const unsigned char c = b(i);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (n == 0 || i + n > s.size()) return 0;
  char32_t v = n == 1 ? c : n == 2 ? (c & 0x1F) : n == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < n; ++k) {
    if ((b(i + k) >> 6) != 0x2) return 0;
    v = (v << 6) | (b(i + k) & 0x3F);
  }
  *cp = v;
  return n;
}

void append_utf8(std::string& out, char32_t v) {
  if (v < 0x80) {
    out += static_cast<char>(v);
  } else if (v < 0x800) {
    out += static_cast<char>(0xC0 | (v >> 6));
    out += static_cast<char>(0x80 | (v & 0x3F));
  } else if (v < 0x10000) {
    out += static_cast<char>(0xE0 | (v >> 12));
    out += static_cast<char>(0x80 | ((v >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (v & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (v >> 18));
    out += static_cast<char>(0x80 | ((v >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((v >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (v & 0x3F));
  }
}

// The C.UTF-8 locale's wide ctype (Unicode simple case mapping), or null when the system lacks the locale.
const std::ctype<wchar_t>* unicode_ctype() {
  static const std::locale* locale = []() -> const std::locale* {
    for (const char* name : {"C.UTF-8", "C.utf8", "en_US.UTF-8"}) {
      try {
        return new std::locale(name);
      } catch (const std::runtime_error&) {
      }
    }
    return nullptr;
  }();
  return locale ? &std::use_facet<std::ctype<wchar_t>>(*locale) : nullptr;
}

std::string to_lower(const std::string& s) {
  const std::ctype<wchar_t>* ctype = unicode_ctype();
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    char32_t cp = 0;
    const size_t n = decode_utf8(s, i, &cp);
    if (n == 0) {  // not UTF-8: the byte as is
      out += s[i++];
      continue;
    }
    if (cp < 0x80)
      cp = (cp >= 'A' && cp <= 'Z') ? cp + ('a' - 'A') : cp;
    else if (ctype)
      cp = static_cast<char32_t>(ctype->tolower(static_cast<wchar_t>(cp)));
    append_utf8(out, cp);
    i += n;
  }
  return out;
}

std::string strip(const std::string& s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string::npos) return "";
  return s.substr(b, s.find_last_not_of(ws) - b + 1);
}

}  // namespace

T5Tokenizer T5Tokenizer::load(const std::string& spiece_model_path, int64_t extra_ids) {
  if (!is_regular_file(spiece_model_path))
    throw Error(spiece_model_path + ": missing (T5's tokenizer: the SentencePiece model spiece.model)");
  if (extra_ids < 0) throw Error(spiece_model_path + ": extra_ids must be >= 0");
  auto impl = std::make_shared<Impl>();
  impl->api = &sentencepiece_api();
  std::string error;
  impl->processor = impl->api->load(spiece_model_path, &error);
  if (!impl->processor) throw Error(spiece_model_path + ": not a SentencePiece model (" + error + ")");
  T5Tokenizer tok;
  tok.path_ = spiece_model_path;
  tok.extra_ids_ = extra_ids;
  tok.pad_id_ = impl->api->pad_id(impl->processor);
  tok.eos_id_ = impl->api->eos_id(impl->processor);
  tok.unk_id_ = impl->api->unk_id(impl->processor);
  if (tok.eos_id_ < 0) throw Error(spiece_model_path + ": the SentencePiece model has no EOS piece (T5's is </s>)");
  if (tok.pad_id_ < 0) tok.pad_id_ = 0;  // T5's pad is id 0 even where the model does not name one
  tok.impl_ = std::move(impl);
  return tok;
}

int64_t T5Tokenizer::piece_count() const {
  return impl_->api->piece_size(impl_->processor);
}

int64_t T5Tokenizer::vocab_size() const {
  return piece_count() + extra_ids_;
}

std::string T5Tokenizer::id_to_piece(int64_t id) const {
  if (id < 0 || id >= vocab_size())
    throw Error(path_ + ": token id " + std::to_string(id) + " outside the vocabulary of " +
                std::to_string(vocab_size()));
  if (id >= piece_count()) return "<extra_id_" + std::to_string(vocab_size() - 1 - id) + ">";
  return impl_->api->id_to_piece(impl_->processor, static_cast<int>(id));
}

int64_t T5Tokenizer::piece_to_id(const std::string& piece) const {
  static const std::regex sentinel("<extra_id_([0-9]{1,9})>");
  std::smatch m;
  if (std::regex_match(piece, m, sentinel)) {
    const int64_t n = std::stoll(m[1].str());
    return n < extra_ids_ ? vocab_size() - 1 - n : unk_id_;
  }
  return impl_->api->piece_to_id(impl_->processor, piece);
}

std::string T5Tokenizer::preprocess(const std::string& prompt, const TokenizeOptions& options) {
  return options.lowercase ? strip(to_lower(prompt)) : prompt;
}

std::vector<std::string> T5Tokenizer::pieces(const std::string& prompt, const TokenizeOptions& options) const {
  std::vector<std::string> out;
  std::string error;
  if (!impl_->api->encode_pieces(impl_->processor, preprocess(prompt, options), &out, &error))
    throw Error(path_ + ": cannot tokenize a prompt (" + error + ")");
  return out;
}

std::vector<int64_t> T5Tokenizer::encode(const std::string& prompt, const TokenizeOptions& options,
                                         bool* truncated) const {
  if (options.max_length < 1)
    throw Error("max_length must be at least 1 (room for the EOS), not " + std::to_string(options.max_length));
  std::vector<int> ids = impl_->ids(preprocess(prompt, options), path_);
  const size_t keep = static_cast<size_t>(options.max_length - 1);
  if (truncated) *truncated = ids.size() > keep;
  if (ids.size() > keep) ids.resize(keep);
  std::vector<int64_t> out(ids.begin(), ids.end());
  out.push_back(eos_id_);
  return out;
}

TokenBatch T5Tokenizer::batch(const std::vector<std::string>& prompts, const TokenizeOptions& options) const {
  const auto B = static_cast<int64_t>(prompts.size());
  TokenBatch out;
  out.input_ids = at::full({B, options.max_length}, pad_id_, at::kLong);
  out.attention_mask = at::zeros({B, options.max_length}, at::kLong);
  auto ids_a = out.input_ids.accessor<int64_t, 2>();
  auto mask_a = out.attention_mask.accessor<int64_t, 2>();
  for (int64_t b = 0; b < B; ++b) {
    bool truncated = false;
    const std::vector<int64_t> ids = encode(prompts[static_cast<size_t>(b)], options, &truncated);
    for (size_t i = 0; i < ids.size(); ++i) {
      ids_a[b][static_cast<int64_t>(i)] = ids[i];
      mask_a[b][static_cast<int64_t>(i)] = 1;
    }
    out.lengths.push_back(static_cast<int64_t>(ids.size()));
    out.truncated.push_back(truncated);
  }
  return out;
}

}  // namespace lit::text
