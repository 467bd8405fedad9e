// NumPy's .npy and .npz files: FID statistics (pytorch-fid, clean-fid: `mu`, `sigma`) and the ADM evaluator's
// batches (`arr_0`, uint8 NHWC). A .npy file is the magic "\x93NUMPY", a version, a little-endian header
// length and a Python dict literal {'descr': '<f8', 'fortran_order': False, 'shape': (64, 64), } padded to a
// multiple of 64 bytes, then the raw array. A .npz file is a zip of "<name>.npy" entries, stored (np.savez)
// or deflated (np.savez_compressed).
// Supported: little-endian or byte-sized float16/32/64, int8/16/32/64, uint8 and bool arrays in C order;
// anything else (big-endian, Fortran order, structured or object dtypes) is refused with a clear message.
// Arrays come back as contiguous CPU tensors. Writes are atomic.
#pragma once

#include <ATen/ATen.h>

#include <string>
#include <utility>
#include <vector>

namespace lit {

at::Tensor read_npy(const std::string& path);
void write_npy(const std::string& path, const at::Tensor& array);

// Named arrays in archive order ("mu" for the entry "mu.npy"); entries not ending in .npy are ignored.
std::vector<std::pair<std::string, at::Tensor>> read_npz(const std::string& path);
// compressed: deflate every entry, as np.savez_compressed does; else stored, as np.savez.
void write_npz(const std::string& path, const std::vector<std::pair<std::string, at::Tensor>>& arrays,
               bool compressed = false);

// The descr of a dtype ("<f4", "|u1", ...); throws lit::Error for a type NumPy files cannot hold (bfloat16).
std::string npy_descr(at::ScalarType type);
// The whole .npy header (magic, version, length, padded dict) for an array of this dtype and shape.
std::string npy_header(at::ScalarType type, const std::vector<int64_t>& shape);

}  // namespace lit
