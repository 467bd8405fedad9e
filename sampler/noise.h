// Where the samplers' randomness comes from. The default, SeededNoise, gives image i of a request its own
// generator seeded `seed + i`, and draws every image's noise on the CPU in float32, (C, H, W) at a time:
// an image then never depends on the batch size, on the other images of its batch, or on the device the
// model runs on. Tests replace the source to replay noise recorded from the reference.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <vector>

namespace lit {

class NoiseSource {
 public:
  virtual ~NoiseSource() = default;
  // Standard normal noise of `shape` (B, C, H, W), float32 on the CPU; callers move it to their device.
  // Called once for the initial noise (when the caller does not supply it), then once for every step
  // that needs noise, in order.
  virtual at::Tensor draw(at::IntArrayRef shape) = 0;
};

class SeededNoise : public NoiseSource {
 public:
  // Images first_image .. first_image + count - 1 of a request seeded `seed`: a batch that is one chunk of
  // a larger run gives its global image indices, so chunking never changes an image.
  SeededNoise(uint64_t seed, int64_t first_image, int64_t count);
  // shape[0] must equal count; each image's (C, H, W) block comes from its own generator.
  at::Tensor draw(at::IntArrayRef shape) override;

  int64_t count() const { return static_cast<int64_t>(generators_.size()); }

 private:
  std::vector<at::Generator> generators_;
};

}  // namespace lit
