#include "sampler/noise.h"

#include <ATen/CPUGeneratorImpl.h>

#include <string>

#include "common/error.h"

namespace lit {

SeededNoise::SeededNoise(uint64_t seed, int64_t first_image, int64_t count) {
  if (first_image < 0 || count < 1)
    throw Error("seeded noise: needs a non-negative first image and at least one image, got first " +
                std::to_string(first_image) + ", count " + std::to_string(count));
  for (int64_t i = 0; i < count; ++i)
    generators_.push_back(at::make_generator<at::CPUGeneratorImpl>(seed + static_cast<uint64_t>(first_image + i)));
}

at::Tensor SeededNoise::draw(at::IntArrayRef shape) {
  if (shape.empty() || shape[0] != count())
    throw Error("seeded noise: asked for a batch of " + std::to_string(shape.empty() ? 0 : shape[0]) +
                " from a source of " + std::to_string(count()) + " images");
  const at::IntArrayRef per_image = shape.slice(1);
  std::vector<at::Tensor> images;
  images.reserve(generators_.size());
  for (auto& gen : generators_) images.push_back(at::randn(per_image, gen, at::TensorOptions().dtype(at::kFloat)));
  return at::stack(images);
}

}  // namespace lit
