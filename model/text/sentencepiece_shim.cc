// liblit_sentencepiece.so: SentencePiece behind the table of sentencepiece_shim.h. Built as its own module
// (model/CMakeLists.txt), never into lit_model: see sentencepiece_shim.h for why. (The .cc extension keeps
// it out of lit_model's *.cpp glob.)
#include "model/text/sentencepiece_shim.h"

#include <sentencepiece_processor.h>

namespace {

using sentencepiece::SentencePieceProcessor;

const SentencePieceProcessor* sp(const void* p) {
  return static_cast<const SentencePieceProcessor*>(p);
}

void* load(const std::string& path, std::string* error) {
  auto* p = new SentencePieceProcessor();
  const auto status = p->Load(path);
  if (!status.ok()) {
    *error = status.ToString();
    delete p;
    return nullptr;
  }
  return p;
}

void destroy(void* p) {
  delete static_cast<SentencePieceProcessor*>(p);
}

int piece_size(const void* p) {
  return sp(p)->GetPieceSize();
}
int pad_id(const void* p) {
  return sp(p)->pad_id();
}
int eos_id(const void* p) {
  return sp(p)->eos_id();
}
int unk_id(const void* p) {
  return sp(p)->unk_id();
}

bool encode_ids(const void* p, const std::string& text, std::vector<int>* ids, std::string* error) {
  const auto status = sp(p)->Encode(text, ids);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

bool encode_pieces(const void* p, const std::string& text, std::vector<std::string>* pieces, std::string* error) {
  const auto status = sp(p)->Encode(text, pieces);
  if (!status.ok()) *error = status.ToString();
  return status.ok();
}

std::string id_to_piece(const void* p, int id) {
  return sp(p)->IdToPiece(id);
}

int piece_to_id(const void* p, const std::string& piece) {
  return sp(p)->PieceToId(piece);
}

const lit::text::SentencePieceApi kApi = {
    lit::text::kSentencePieceAbiVersion,
    load,
    destroy,
    piece_size,
    pad_id,
    eos_id,
    unk_id,
    encode_ids,
    encode_pieces,
    id_to_piece,
    piece_to_id,
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const lit::text::SentencePieceApi* lit_sentencepiece_api() {
  return &kApi;
}
