// NaN / Inf in loaded weights: a checkpoint that holds them gives all-black or all-NaN images without a word,
// so model loading refuses it by default (naming the tensor); LIT_ALLOW_NON_FINITE_WEIGHTS=1 or
// `lit --allow-non-finite-weights` loads it anyway.
#pragma once

#include <string>

#include "weights/state_dict.h"

namespace lit {

// Throws lit::Error "<where>: tensor 'x' holds 3 NaN and 1 infinite values of 64 (...)" for the first floating
// point tensor with a non-finite value. Integer tensors are skipped.
void check_finite_weights(const StateDict& weights, const std::string& where);

// Whether non-finite weights are accepted (environment LIT_ALLOW_NON_FINITE_WEIGHTS=1, or set here).
bool non_finite_weights_allowed();
void allow_non_finite_weights(bool allow);

}  // namespace lit
