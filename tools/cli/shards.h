// Sharded generation: an FID-50K run split over N processes (or machines), each generating its share of the
// images into a folder, with one merge step at the end.
//
// Which images a shard makes: the run's batches lie on a fixed grid (images [kB, (k+1)B), B = --batch-size)
// and batch k belongs to shard k mod N. Every image keeps its seed (seed + i) AND the very batch it has in
// an unsharded run, so the union of the shards is byte-identical to one run: batched matrix products round
// differently from smaller ones (up to one 8-bit unit per pixel, measured), so a shard that regrouped its
// images into other batches would not be. With --batch-size 1, image i belongs to shard i mod N.
//
// Images are named by their index in the whole run (000123.png), whatever the shard: shards may write into
// one shared folder or into folders of their own, and `lit merge-npz` / `lit fid` take the folders as they are.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/eval/fid_inputs.h"

namespace lit::cli {

struct Shard {
  int64_t index = 0, count = 1;  // shard K of N
  bool active() const { return count > 1; }
  // Whether image i of a run generated in batches of batch_size belongs to this shard.
  bool has_image(int64_t i, int64_t batch_size) const { return (i / batch_size) % count == index; }
  std::string text() const { return std::to_string(index) + "/" + std::to_string(count); }
};

// "K/N" with 0 <= K < N. Throws lit::Error with the rule when malformed.
Shard parse_shard(const std::string& text);

// The shard of this process: --shard when given (non-empty); else, under torchrun or a launcher setting
// RANK and WORLD_SIZE, shard RANK/WORLD_SIZE; else the whole run (0/1).
Shard resolve_shard(const std::string& option);

// The device of a generating process: under a launcher (LOCAL_RANK set), plain "cuda" becomes
// cuda:LOCAL_RANK so the ranks of a node use one GPU each; any other device string is kept.
std::string shard_device(const std::string& device);

// The images of `lit generate` folders (shards of one run, or a whole run), in index order: every image file
// whose name is its index (000123.png). Throws lit::Error when an index appears twice or the indices are
// not exactly 0..n-1 (naming the first missing one: a shard has not finished).
std::vector<std::string> run_images_in_order(const std::vector<std::string>& folders);

// Writes the ADM evaluator's sample batch: arr_0 uint8 (N, H, W, C) from the images in order and, when
// labels is defined, arr_1 int64 (N) -- the layout of `lit generate --npz`. Atomic (nothing appears at the
// path unless complete). Throws lit::Error when the images differ in size.
void write_image_batch_npz(const std::string& path, const std::vector<std::string>& images, const at::Tensor& labels);

// `lit fid`'s input "A,B,...": the shards of one run taken together, as one input -- image folders (their
// images together, by file name, which is the run's index order for `lit generate` folders) or .npz image
// batches (their arr_0 and arr_1 concatenated in the order given). Throws lit::Error for statistics files
// or a mix of folders and batches.
FidInput open_fid_shards(const std::string& comma_separated);

}  // namespace lit::cli
