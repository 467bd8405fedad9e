// Strict numbers: no silent wrap of -1 or 2^64 to 2^64 - 1, no nan, inf or out-of-range values.
#include "common/input_limits.h"
#include "common/parse_number.h"
#include "tests/test_util.h"

namespace lit {
namespace {

using test::error_of;

TEST(ParseNumber, SeedsAreExactlyTheUint64Range) {
  EXPECT_EQ(parse_seed("0"), 0u);
  EXPECT_EQ(parse_seed("18446744073709551615"), 18446744073709551615ull);
  EXPECT_EQ(error_of([] { parse_seed("18446744073709551616"); }),
            "--seed: 18446744073709551616 is out of range (at most 18446744073709551615)");
  EXPECT_EQ(error_of([] { parse_seed("-1"); }), "--seed: '-1' is not a non-negative integer");
  EXPECT_EQ(error_of([] { parse_seed("1e3"); }), "--seed: '1e3' is not a non-negative integer");
  EXPECT_EQ(error_of([] { parse_seed(" 1"); }), "--seed: ' 1' is not a non-negative integer");
  EXPECT_EQ(error_of([] { parse_seed(""); }), "--seed: expected a non-negative integer, got nothing");
}

TEST(ParseNumber, FiniteValuesWithinTheirRange) {
  EXPECT_DOUBLE_EQ(parse_finite("4.5", "--cfg-scale", 0, 100), 4.5);
  EXPECT_DOUBLE_EQ(parse_finite("-1e-3", "--x", -1, 1), -1e-3);
  EXPECT_EQ(error_of([] { parse_finite("1e300", "--cfg-scale", 0, 100); }),
            "--cfg-scale: 1e+300 is outside the accepted range [0, 100]");
  EXPECT_EQ(error_of([] { parse_finite("1e999", "--eta", 0, 1); }), "--eta: '1e999' is not a finite number");
  EXPECT_EQ(error_of([] { parse_finite("nan", "--eta", 0, 1); }), "--eta: 'nan' is not a finite number");
  EXPECT_EQ(error_of([] { parse_finite("inf", "--eta", 0, 1); }), "--eta: 'inf' is not a finite number");
  EXPECT_EQ(error_of([] { parse_finite("0x10", "--eta", 0, 1); }), "--eta: '0x10' is not a finite number");
  EXPECT_EQ(error_of([] { parse_finite("1.5", "--eta", 0, 1); }), "--eta: 1.5 is outside the accepted range [0, 1]");
  EXPECT_EQ(error_of([] { check_finite_range(NAN, "--eta", 0, 1); }), "--eta: nan is not a finite number");
  EXPECT_NO_THROW(check_finite_range(1, "--eta", 0, 1));
}

TEST(InputLimits, PixelCapIsSettableAndParsedStrictly) {
  const InputLimits saved = input_limits();
  EXPECT_EQ(saved.max_image_pixels, uint64_t(64) << 20);
  InputLimits raised = saved;
  raised.max_image_pixels = parse_pixel_limit("400000000", "--max-image-pixels");
  set_input_limits(raised);
  EXPECT_EQ(input_limits().max_image_pixels, 400000000u);
  set_input_limits(saved);
  EXPECT_EQ(error_of([] { parse_pixel_limit("0", "LIT_MAX_IMAGE_PIXELS"); }),
            "LIT_MAX_IMAGE_PIXELS: the pixel limit must be at least 1");
}

}  // namespace
}  // namespace lit
