// The restricted unpickler alone: the opcodes torch.save writes, the allow-list, the limits, and a fuzz pass
// over the real data.pkl of the training checkpoint (every mutation loads or throws lit::Error; the ASan build
// checks that nothing reads out of bounds on the way).
#include <gtest/gtest.h>

#include "tests/test_util.h"
#include "tests/weights/torch_file_builder.h"
#include "common/error.h"
#include "weights/torch/torch_pickle.h"
#include "weights/zip_archive.h"

namespace lit {
namespace {

using Kind = PickleValue::Kind;
using test::PickleBytes;

PickleDocument parse(const std::string& bytes, const PickleLimits& limits = {}) {
  return parse_torch_pickle(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), "test", limits);
}

std::string parse_error(const std::string& bytes, const PickleLimits& limits = {}) {
  try {
    parse(bytes, limits);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(TorchPickle, PlainValues) {
  PickleBytes p;
  p.proto(2).op('}').mark();
  p.str("int").int4(-7);
  p.str("byte").int1(200);
  p.str("short").op('M').le(40000, 2);
  p.str("long").op('\x8a').op('\x02').le(0xff00, 2);                   // LONG1 of 2 bytes: -256
  p.str("float").op('G').raw(std::string("\x3f\xf8\0\0\0\0\0\0", 8));  // 1.5, big-endian
  p.str("none").op('N');
  p.str("t").op('\x88');
  p.str("short_string").op('\x8c').op('\x02').raw("hi");
  p.str("bytes").op('C').op('\x03').raw("abc");
  p.str("tuple").int1(1).int1(2).op('\x86');
  p.str("list").op(']').op('q').op('\x05').mark().int1(3).int1(4).op('e');
  p.str("again").op('h').op('\x05');  // BINGET: the same list
  p.int1(9).str("int key");
  p.op('u').stop();
  const PickleDocument doc = parse(p.s);
  const PickleValue& d = *doc.root();
  ASSERT_TRUE(d.is(Kind::Dict));
  EXPECT_EQ(d.dict_size(), 13u);
  EXPECT_EQ(d.dict_find("int")->integer, -7);
  EXPECT_EQ(d.dict_find("byte")->integer, 200);
  EXPECT_EQ(d.dict_find("short")->integer, 40000);
  EXPECT_EQ(d.dict_find("long")->integer, -256);
  EXPECT_EQ(d.dict_find("float")->real, 1.5);
  EXPECT_TRUE(d.dict_find("none")->is(Kind::None));
  EXPECT_TRUE(d.dict_find("t")->is(Kind::Bool));
  EXPECT_EQ(d.dict_find("t")->integer, 1);
  EXPECT_EQ(d.dict_find("short_string")->text, "hi");
  EXPECT_TRUE(d.dict_find("bytes")->is(Kind::Bytes));
  EXPECT_EQ(d.dict_find("tuple")->items.size(), 2u);
  EXPECT_EQ(d.dict_find("list")->items.size(), 2u);
  EXPECT_EQ(d.dict_find("again"), d.dict_find("list"));
  EXPECT_EQ(pickle_key_string(*d.dict_key(12)), "9");
  EXPECT_EQ(doc.bytes_used(), p.s.size());
}

TEST(TorchPickle, TensorRecord) {
  const PickleDocument doc = parse(test::state_dict_pickle("w", "7", 24, {2, 3}, {3, 1}, 6));
  const PickleValue* w = doc.root()->dict_find("w");
  ASSERT_TRUE(w && w->is(Kind::Tensor));
  EXPECT_EQ(w->sizes, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(w->strides, (std::vector<int64_t>{3, 1}));
  EXPECT_EQ(w->integer, 6);
  EXPECT_EQ(w->tensor_storage()->text, "7");
  EXPECT_EQ(w->tensor_storage()->dtype, at::kFloat);
  EXPECT_EQ(doc.storages().size(), 1u);
}

TEST(TorchPickle, EveryStorageTypeMapsToItsDtype) {
  const std::pair<const char*, at::ScalarType> types[] = {
      {"FloatStorage", at::kFloat},   {"HalfStorage", at::kHalf},   {"BFloat16Storage", at::kBFloat16},
      {"DoubleStorage", at::kDouble}, {"LongStorage", at::kLong},   {"IntStorage", at::kInt},
      {"ShortStorage", at::kShort},   {"CharStorage", at::kChar},   {"ByteStorage", at::kByte},
      {"BoolStorage", at::kBool},     {"UntypedStorage", at::kByte}};
  for (const auto& [name, type] : types) {
    PickleBytes p;
    p.proto(2).tensor("0", 4, 0, {4}, {1}, name).stop();
    const PickleDocument doc = parse(p.s);
    EXPECT_EQ(doc.root()->tensor_storage()->dtype, type) << name;
  }
}

TEST(TorchPickle, RefusesWhatTorchSaveNeverWrites) {
  struct Case {
    std::string bytes, expect;
  };
  PickleBytes evil_reduce, evil_stack, build_on_list, append_on_tuple, big_long, views, odd_dict;
  evil_reduce.proto(2).global("posix", "system").stop();
  evil_stack.proto(4).str("torch").str("load").op('\x93').stop();
  build_on_list.proto(2).op(']').op('}').op('b').stop();
  append_on_tuple.proto(2).op(')').int1(1).op('a').stop();
  big_long.proto(2).op('\x8a').op('\x09').raw(std::string(9, '\x01')).stop();
  views.proto(2).mark().str("storage").global("torch", "FloatStorage").str("0").str("cpu").int1(4).int1(0);
  views.op('t').op('Q').stop();
  odd_dict.proto(2).mark().int1(1).op('d').stop();
  PickleBytes not_storage_type;
  not_storage_type.proto(2).mark().str("storage").global("collections", "OrderedDict").str("0").str("cpu").int1(4);
  not_storage_type.op('t').op('Q').stop();
  const std::vector<Case> cases = {
      {evil_reduce.s, "refusing the global 'posix.system'"},
      {evil_stack.s, "refusing the global 'torch.load'"},
      {build_on_list.s, "BUILD on a list"},
      {append_on_tuple.s, "APPEND on a tuple, expected a list"},
      {big_long.s, "integer wider than 64 bits"},
      {views.s, "storage views"},
      {odd_dict.s, "odd number"},
      {not_storage_type.s, "names no storage type"},
      {std::string("\x80\x02\xff", 3), "unsupported pickle opcode 0xff"},
      {std::string("\x80\x02\x30.", 4), "POP on an empty stack"},
      {std::string("\x80\x02h\x05.", 5), "memo entry 5, never stored"},
      {std::string("\x80\x02t.", 4), "TUPLE without a MARK"},
      {std::string("\x80\x02X\xff\xff\xff\x00"
                   "ab.",
                   10),
       "truncated pickle"},
      {std::string("\x80\x02", 2), "truncated pickle"},
      {std::string("\x80\x09.", 3), "unsupported pickle protocol 9"},
      {"", "truncated pickle"},
  };
  for (const auto& c : cases) {
    const std::string what = parse_error(c.bytes);
    EXPECT_NE(what.find(c.expect), std::string::npos) << "expected '" << c.expect << "', got: " << what;
    EXPECT_EQ(what.find('\n'), std::string::npos) << what;
  }
}

TEST(TorchPickle, LimitsAreEnforced) {
  PickleBytes many;  // 100 empty lists
  many.proto(2).mark();
  for (int i = 0; i < 100; ++i) many.op(']');
  many.op('l').stop();
  EXPECT_NO_THROW(parse(many.s));
  PickleLimits limits;
  limits.max_values = 50;
  EXPECT_NE(parse_error(many.s, limits).find("more than 50 objects"), std::string::npos);
  limits = {};
  limits.max_stack = 50;
  EXPECT_NE(parse_error(many.s, limits).find("stack deeper than 50"), std::string::npos);
  limits = {};
  limits.max_references = 50;
  EXPECT_NE(parse_error(many.s, limits).find("more than 50 items"), std::string::npos);
  limits = {};
  limits.max_string = 3;
  PickleBytes text;
  text.proto(2).str("abcd").stop();
  EXPECT_NE(parse_error(text.s, limits).find("limit 3"), std::string::npos);
  limits = {};
  limits.max_memo = 2;
  PickleBytes memo;
  memo.proto(4).op(']').op('\x94').op('\x94').op('\x94').stop();
  EXPECT_NE(parse_error(memo.s, limits).find("memo holds more than 2"), std::string::npos);
  limits = {};
  limits.max_marks = 3;
  EXPECT_NE(parse_error("\x80\x02((((", limits).find("open MARKs"), std::string::npos);
}

TEST(TorchPickle, CyclesAndDeepNestingAreHarmless) {
  // A list that contains itself, and 200k nested lists: the arena owns every value, so neither leaks nor
  // recurses when the document is destroyed.
  PickleBytes cycle;
  cycle.proto(2).op(']').op('q').op('\x00').op('h').op('\x00').op('a').stop();
  const PickleDocument doc = parse(cycle.s);
  EXPECT_EQ(doc.root()->items[0], doc.root());
  PickleBytes deep;
  deep.proto(2);
  for (int i = 0; i < 200000; ++i) deep.op(']');
  for (int i = 0; i < 199999; ++i) deep.op('a');
  deep.stop();
  EXPECT_NO_THROW(parse(deep.s));
}

TEST(TorchPickle, TensorArgumentsAreChecked) {
  EXPECT_NE(parse_error(test::state_dict_pickle("w", "0", 5, {2, 3}, {3, 1})).find("holds 5 elements, too few"),
            std::string::npos);
  EXPECT_NE(parse_error(test::state_dict_pickle("w", "0", 5, {2, 3}, {1})).find("2 sizes but 1 strides"),
            std::string::npos);
  EXPECT_NE(parse_error(test::state_dict_pickle("w", "0", 5, {-1}, {1})).find("negative or non-integer"),
            std::string::npos);
  EXPECT_NE(parse_error(test::state_dict_pickle("w", "0", 5, {0x7fffffff, 0x7fffffff, 0x7fffffff},
                                                {0x7fffffff, 0x7fffffff, 0x7fffffff}))
                .find("overflow"),
            std::string::npos);
  // Empty tensors address nothing.
  EXPECT_NO_THROW(parse(test::state_dict_pickle("w", "0", 0, {0, 3}, {3, 1})));
}

TEST(TorchPickle, FuzzedTrainingCheckpointPickleNeverCrashes) {
  const ZipReader zip(test::fixture("dit/dit_tiny_train_ckpt.pt"));
  const std::string original = zip.read(*zip.find("dit_tiny_train_ckpt/data.pkl"), 1 << 20);
  EXPECT_NO_THROW(parse(original));
  uint64_t state = 42;
  auto next = [&] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  int errors = 0;
  const int rounds = 3000;
  for (int round = 0; round < rounds; ++round) {
    std::string bytes = original;
    const int flips = 1 + static_cast<int>(next() % 4);
    for (int i = 0; i < flips; ++i) bytes[next() % bytes.size()] = static_cast<char>(next() & 0xff);
    if (next() % 4 == 0) bytes.resize(next() % bytes.size());
    try {
      parse(bytes);
    } catch (const Error&) {
      ++errors;
    }
  }
  EXPECT_GT(errors, rounds / 10);  // most mutations are caught; the rest still parse to something
}

}  // namespace
}  // namespace lit
