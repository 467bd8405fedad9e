// Types shared by the CUDA launchers; plain C++ so that ATen-side code includes them without CUDA headers.
#pragma once

namespace lit::kernels::cuda {

// Element type of the tensors a launcher reads and writes.
enum class DType { F32, F16, BF16 };

}  // namespace lit::kernels::cuda
