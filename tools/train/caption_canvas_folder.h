// The caption canvases (tools/train/caption_canvas.h) as a data set folder, for `lit make-captions`:
//
//   NNNNNN.png + NNNNNN.txt  the canvases and their captions: the caption-folder layout that `lit train` and
//                            `lit extract-latents` read (tools/train/caption_data.h)
//   metadata.jsonl           one JSON object per image: image, caption, objects (class, garment, colour, rgb,
//                            position, size, box), canvas
//   corpus.txt               every caption, one a line (the input of spm_train)
//   holdout.txt              the held-out colour x garment combinations, "colour garment" one a line
//   eval-prompts.jsonl       the evaluation prompts: caption, group, objects, canvas
//   make-captions.json       how the folder was made (count, seed, canvas, two-garment fraction, source)
//
// The folder is written as DIR.partial and renamed to DIR when complete, so nothing half-written ever carries
// the final name; the canvases are generated and written one at a time (memory does not grow with the count).
#pragma once

#include <cstdint>
#include <functional>
#include <string>

#include "tools/train/caption_canvas.h"

namespace lit::train {

struct CaptionCanvasFolderSummary {
  int64_t images = 0;
  int64_t two_garments = 0;  // images with two garments
  int64_t eval_prompts = 0;
};

// Checks, before any work, that DIR can be written: it does not exist, or is an empty folder, or (with
// overwrite) a folder this command wrote before (it holds make-captions.json). Throws lit::Error naming DIR.
void check_caption_canvas_output(const std::string& dir, bool overwrite);

// Writes `count` (1 .. 10,000,000) canvases of `generator` into DIR (see above), calling progress(done) after
// each image. `source` is recorded in make-captions.json (e.g. the Fashion-MNIST folder and split). An
// unfinished DIR.partial left by an interrupted run is cleared and reused; one another run is writing is
// refused. Throws lit::Error.
CaptionCanvasFolderSummary write_caption_canvas_folder(const CaptionCanvasGenerator& generator, const std::string& dir,
                                                       int64_t count, bool overwrite, const std::string& source,
                                                       const std::function<void(int64_t)>& progress = {});

}  // namespace lit::train
