#include "tools/train/caption_canvas_folder.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "common/atomic_file.h"
#include "common/error.h"
#include "common/printable.h"
#include "common/run_lock.h"
#include "weights/image_io.h"

namespace fs = std::filesystem;

namespace lit::train {
namespace {

constexpr int64_t kMaxImages = 10000000;
constexpr const char* kRecordName = "make-captions.json";

std::string without_trailing_slashes(std::string dir) {
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

bool is_empty_folder(const std::string& dir) {
  std::error_code ec;
  return fs::is_empty(dir, ec) && !ec;
}

// "000042": the index with leading zeros to six digits, or to the digits of the largest index.
std::string image_stem(int64_t index, int64_t count) {
  const size_t width = std::max<size_t>(6, std::to_string(std::max<int64_t>(0, count - 1)).size());
  const std::string digits = std::to_string(index);
  return std::string(width > digits.size() ? width - digits.size() : 0, '0') + digits;
}

void write_text(AtomicFile& file, const std::string& text) {
  file.write(text.data(), text.size());
}

// Empties a folder of an earlier, interrupted run (all but its run lock, which this run holds).
void clear_partial(const std::string& partial) {
  for (const auto& entry : fs::directory_iterator(partial)) {
    if (entry.path().filename() == RunFolderLock::kFileName) continue;
    std::string error;
    if (!remove_tree(entry.path().string(), &error))
      throw Error(printable(entry.path().string()) + ": cannot remove what an interrupted run left: " + error);
  }
}

// A caption file inside DIR.partial. Not an AtomicFile: the folder is renamed into place only when complete,
// and its files reach the disk together before that (sync_file_system), instead of two fsyncs per file.
void write_caption_file(const std::string& path, const std::string& text) {
  std::FILE* f = std::fopen(path.c_str(), "wbx");  // x: O_EXCL, never through a planted file or link
  if (!f) throw Error(printable(path) + ": cannot create: " + std::strerror(errno));
  const bool written = std::fwrite(text.data(), 1, text.size(), f) == text.size();
  if (std::fclose(f) != 0 || !written) throw Error(printable(path) + ": cannot write: " + std::strerror(errno));
}

void rename_or_throw(const std::string& from, const std::string& to) {
  if (::rename(from.c_str(), to.c_str()) != 0)
    throw Error(printable(from) + ": cannot rename to " + printable(to) + ": " + std::strerror(errno));
}

}  // namespace

void check_caption_canvas_output(const std::string& dir_in, bool overwrite) {
  const std::string dir = without_trailing_slashes(dir_in);
  if (dir.empty()) throw Error("make-captions: no output folder given");
  std::error_code ec;
  const fs::path parent = fs::absolute(dir, ec).parent_path();
  if (ec || !fs::is_directory(parent))
    throw Error(printable(dir) + ": the folder that would hold it, " + printable(parent.string()) + ", does not exist");
  if (fs::exists(fs::symlink_status(dir))) {
    if (!fs::is_directory(fs::symlink_status(dir))) throw Error(printable(dir) + ": exists and is not a folder");
    if (!is_empty_folder(dir)) {
      if (!overwrite) throw Error(printable(dir) + ": exists and is not empty (--overwrite replaces it)");
      if (!fs::is_regular_file(fs::path(dir) / kRecordName))
        throw Error(printable(dir) + ": has no " + kRecordName +
                    ", so lit make-captions did not write it; refusing to replace it");
    }
  }
  const std::string partial = dir + ".partial";
  if (fs::exists(fs::symlink_status(partial))) {
    if (!fs::is_directory(fs::symlink_status(partial)))
      throw Error(printable(partial) + ": exists and is not a folder");
    if (!is_empty_folder(partial) && !fs::exists(fs::path(partial) / RunFolderLock::kFileName))
      throw Error(printable(partial) + ": exists and is not an unfinished run of lit make-captions; remove it");
  }
}

CaptionCanvasFolderSummary write_caption_canvas_folder(const CaptionCanvasGenerator& generator,
                                                       const std::string& dir_in, int64_t count, bool overwrite,
                                                       const std::string& source,
                                                       const std::function<void(int64_t)>& progress) {
  if (count < 1 || count > kMaxImages)
    throw Error("make-captions: the image count " + std::to_string(count) + " is not in 1 .. " +
                std::to_string(kMaxImages));
  const std::string dir = without_trailing_slashes(dir_in);
  check_caption_canvas_output(dir, overwrite);
  const std::string partial = dir + ".partial";
  std::error_code ec;
  fs::create_directory(partial, ec);
  if (ec) throw Error(printable(partial) + ": cannot create the folder: " + ec.message());
  RunFolderLock lock(partial);
  clear_partial(partial);

  const CanvasOptions& options = generator.options();
  const int64_t s = options.canvas;
  CaptionCanvasFolderSummary summary;
  AtomicFile metadata(partial + "/metadata.jsonl"), corpus(partial + "/corpus.txt");
  for (int64_t i = 0; i < count; ++i) {
    const CanvasExample example = generator.example(i);
    const std::string stem = image_stem(i, count);
    const at::Tensor pixels = at::from_blob(const_cast<uint8_t*>(example.pixels.data()), {s, s, 3}, at::kByte);
    ImageWriteOptions unsynced;  // the whole folder is synced once, before it is renamed into place
    unsynced.sync = false;
    write_image(partial + "/" + stem + ".png", pixels, unsynced);
    write_caption_file(partial + "/" + stem + ".txt", example.caption + "\n");
    write_text(metadata, canvas_metadata_json(example, stem + ".png", s) + "\n");
    write_text(corpus, example.caption + "\n");
    summary.two_garments += example.objects.size() == 2 ? 1 : 0;
    summary.images = i + 1;
    if (progress) progress(i + 1);
  }
  metadata.commit();
  corpus.commit();

  AtomicFile holdout(partial + "/holdout.txt");
  for (const ColourGarment& c : held_out_combos())
    write_text(holdout, c.colour + " " + canvas_garments()[static_cast<size_t>(c.class_index)].name + "\n");
  holdout.commit();
  AtomicFile eval(partial + "/eval-prompts.jsonl");
  for (const EvalPrompt& p : caption_eval_prompts()) write_text(eval, eval_prompt_json(p, s) + "\n");
  eval.commit();
  summary.eval_prompts = static_cast<int64_t>(caption_eval_prompts().size());

  nlohmann::ordered_json record;
  record["count"] = count;
  record["seed"] = options.seed;
  record["canvas"] = s;
  record["two_garment_fraction"] = options.two_garment_fraction;
  record["source"] = source;
  record["two_garment_images"] = summary.two_garments;
  record["eval_prompts"] = summary.eval_prompts;
  AtomicFile record_file(partial + "/" + kRecordName);
  write_text(record_file, record.dump(2) + "\n");
  record_file.commit();

  sync_file_system(partial);
  // Into place: over an empty folder, or (--overwrite) moving the earlier data set aside first.
  if (fs::exists(fs::symlink_status(dir)) && !is_empty_folder(dir)) {
    check_caption_canvas_output(dir, overwrite);  // still a folder this command wrote
    const std::string aside = dir + ".replaced-" + std::to_string(::getpid());
    rename_or_throw(dir, aside);
    try {
      rename_or_throw(partial, dir);
    } catch (...) {
      ::rename(aside.c_str(), dir.c_str());
      throw;
    }
    std::string error;
    if (!remove_tree(aside, &error)) throw Error(printable(aside) + ": cannot remove the replaced data set: " + error);
  } else {
    rename_or_throw(partial, dir);
  }
  ::unlink((dir + "/" + RunFolderLock::kFileName).c_str());
  sync_parent_folder(dir);
  return summary;
}

}  // namespace lit::train
