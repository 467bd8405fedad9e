// The boundary between lit and the SentencePiece library.
//
// Why a boundary: Debian's libsentencepiece.so carries its own copy of protobuf-lite 3.14 and exports its
// symbols, while Debian's LibTorch loads the system libprotobuf 3.21. Linked into one program, each library's
// protobuf calls land in the other's copy and the program crashes (or aborts on protobuf's version check)
// before main. So SentencePiece lives in a small loadable module (liblit_sentencepiece.so, built from
// sentencepiece_shim.cc, linked against libsentencepiece) that lit opens with dlopen(RTLD_LOCAL |
// RTLD_DEEPBIND): SentencePiece then resolves protobuf to its own copy and LibTorch never sees it.
//
// The module exports one function, lit_sentencepiece_api(), returning this table. C++ types cross the
// boundary: both sides use the one libstdc++ of the process.
#pragma once

#include <string>
#include <vector>

namespace lit::text {

struct SentencePieceApi {
  int abi_version;  // kSentencePieceAbiVersion
  // A processor for a model file, or null with *error set.
  void* (*load)(const std::string& path, std::string* error);
  void (*destroy)(void* processor);
  int (*piece_size)(const void* processor);
  int (*pad_id)(const void* processor);
  int (*eos_id)(const void* processor);
  int (*unk_id)(const void* processor);
  bool (*encode_ids)(const void* processor, const std::string& text, std::vector<int>* ids, std::string* error);
  bool (*encode_pieces)(const void* processor, const std::string& text, std::vector<std::string>* pieces,
                        std::string* error);
  std::string (*id_to_piece)(const void* processor, int id);
  int (*piece_to_id)(const void* processor, const std::string& piece);
};

constexpr int kSentencePieceAbiVersion = 1;

// Opens the module once (LIT_SENTENCEPIECE_MODULE in the environment, else liblit_sentencepiece.so beside
// the running executable, else where the build put it) and returns its table. Throws lit::Error saying
// which paths were tried and why they failed.
const SentencePieceApi& sentencepiece_api();

}  // namespace lit::text

extern "C" const lit::text::SentencePieceApi* lit_sentencepiece_api();
