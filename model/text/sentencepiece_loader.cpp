// Opens liblit_sentencepiece.so (sentencepiece_shim.h explains why SentencePiece is not linked directly).
#include <dlfcn.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <mutex>

#include "common/error.h"
#include "model/text/sentencepiece_shim.h"

#ifndef LIT_SENTENCEPIECE_MODULE_PATH
#define LIT_SENTENCEPIECE_MODULE_PATH ""
#endif

namespace lit::text {
namespace {

constexpr const char* kModuleName = "liblit_sentencepiece.so";

std::string executable_folder() {
  char buf[PATH_MAX];
  const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  std::string path(buf, static_cast<size_t>(n));
  return path.substr(0, path.rfind('/'));
}

const SentencePieceApi* open_module(std::string* tried) {
  std::vector<std::string> candidates;
  if (const char* env = std::getenv("LIT_SENTENCEPIECE_MODULE")) candidates.push_back(env);
  const std::string exe = executable_folder();
  if (!exe.empty()) candidates.push_back(exe + "/" + kModuleName);
  if (*LIT_SENTENCEPIECE_MODULE_PATH) candidates.push_back(LIT_SENTENCEPIECE_MODULE_PATH);
  int flags = RTLD_NOW | RTLD_LOCAL;
#if !defined(__SANITIZE_ADDRESS__)
  flags |= RTLD_DEEPBIND;  // SentencePiece's protobuf calls resolve to its own copy (AddressSanitizer forbids it)
#endif
  for (const std::string& path : candidates) {
    if (::access(path.c_str(), F_OK) != 0) {
      *tried += (tried->empty() ? "" : "; ") + path + ": missing";
      continue;
    }
    void* handle = ::dlopen(path.c_str(), flags);
    if (!handle) {
      const char* e = ::dlerror();
      *tried += (tried->empty() ? "" : "; ") + std::string(e ? e : path + ": cannot open");
      continue;
    }
    using ApiFn = const SentencePieceApi* (*)();
    auto fn = reinterpret_cast<ApiFn>(::dlsym(handle, "lit_sentencepiece_api"));
    const SentencePieceApi* api = fn ? fn() : nullptr;
    if (!api || api->abi_version != kSentencePieceAbiVersion) {
      *tried += (tried->empty() ? "" : "; ") + path + ": not this build's SentencePiece module";
      ::dlclose(handle);
      continue;
    }
    return api;  // stays open for the life of the process
  }
  return nullptr;
}

}  // namespace

const SentencePieceApi& sentencepiece_api() {
  static std::once_flag once;
  static const SentencePieceApi* api = nullptr;
  static std::string tried;
  std::call_once(once, [] { api = open_module(&tried); });
  if (!api)
    throw Error(std::string("the SentencePiece module ") + kModuleName + " could not be loaded (" + tried +
                "); set LIT_SENTENCEPIECE_MODULE to its path");
  return *api;
}

}  // namespace lit::text
