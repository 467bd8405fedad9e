#include "weights/torch/torch_pickle.h"

#include <cstring>
#include <limits>
#include <unordered_map>
#include <utility>

#include "common/error.h"

namespace lit {

using Kind = PickleValue::Kind;

// ---------------------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------------------
const PickleValue* PickleValue::dict_find(const std::string& key) const {
  const PickleValue* found = nullptr;
  for (size_t i = 0; i < dict_size(); ++i)
    if (dict_key(i)->is(Kind::String) && dict_key(i)->text == key) found = dict_value(i);
  return found;
}

const char* pickle_kind_name(Kind kind) {
  switch (kind) {
    case Kind::None:
      return "None";
    case Kind::Bool:
      return "a bool";
    case Kind::Int:
      return "an int";
    case Kind::Float:
      return "a float";
    case Kind::String:
      return "a string";
    case Kind::Bytes:
      return "a bytes object";
    case Kind::Tuple:
      return "a tuple";
    case Kind::List:
      return "a list";
    case Kind::Dict:
      return "a dict";
    case Kind::Global:
      return "a class or function";
    case Kind::Object:
      return "an object";
    case Kind::Storage:
      return "a storage";
    case Kind::Tensor:
      return "a tensor";
  }
  return "a value";
}

std::string pickle_key_string(const PickleValue& key) {
  if (key.is(Kind::String)) return key.text;
  if (key.is(Kind::Int)) return std::to_string(key.integer);
  return std::string("<") + pickle_kind_name(key.kind) + ">";
}

PickleDocument::PickleDocument() : values_(std::make_unique<std::deque<PickleValue>>()) {}
PickleDocument::PickleDocument(PickleDocument&&) noexcept = default;
PickleDocument& PickleDocument::operator=(PickleDocument&&) noexcept = default;
PickleDocument::~PickleDocument() = default;

// ---------------------------------------------------------------------------------------------------------
// The allow-list of globals
// ---------------------------------------------------------------------------------------------------------
namespace {

enum class Callable { OrderedDict, RebuildTensor, RebuildTensorV2, RebuildParameter, Namespace, StorageType };

struct AllowedGlobal {
  std::string qualified;  // "module.name"
  Callable callable;
  at::ScalarType storage_dtype;
};

// Storage classes appear as persistent-id type tags; "torch.cuda.*Storage" comes from old GPU checkpoints, whose
// tensors we load on the CPU like every other.
const std::vector<AllowedGlobal>& allowed_globals() {
  static const std::vector<AllowedGlobal> table = [] {
    std::vector<AllowedGlobal> t = {
        {"collections.OrderedDict", Callable::OrderedDict, at::kByte},
        {"torch._utils._rebuild_tensor", Callable::RebuildTensor, at::kByte},
        {"torch._utils._rebuild_tensor_v2", Callable::RebuildTensorV2, at::kByte},
        {"torch._utils._rebuild_parameter", Callable::RebuildParameter, at::kByte},
        {"torch._utils._rebuild_parameter_with_state", Callable::RebuildParameter, at::kByte},
        {"argparse.Namespace", Callable::Namespace, at::kByte},
        {"torch.UntypedStorage", Callable::StorageType, at::kByte},
    };
    const std::pair<const char*, at::ScalarType> storages[] = {
        {"FloatStorage", at::kFloat},   {"HalfStorage", at::kHalf}, {"BFloat16Storage", at::kBFloat16},
        {"DoubleStorage", at::kDouble}, {"LongStorage", at::kLong}, {"IntStorage", at::kInt},
        {"ShortStorage", at::kShort},   {"CharStorage", at::kChar}, {"ByteStorage", at::kByte},
        {"BoolStorage", at::kBool},
    };
    for (const auto& [name, dtype] : storages) {
      t.push_back({std::string("torch.") + name, Callable::StorageType, dtype});
      t.push_back({std::string("torch.cuda.") + name, Callable::StorageType, dtype});
    }
    return t;
  }();
  return table;
}

const AllowedGlobal* find_global(const std::string& qualified) {
  for (const auto& g : allowed_globals())
    if (qualified == g.qualified) return &g;
  return nullptr;
}

// Opcodes (the names of Python's pickletools).
enum Op : unsigned char {
  MARK = '(',
  STOP = '.',
  POP = '0',
  POP_MARK = '1',
  DUP = '2',
  BINFLOAT = 'G',
  BININT = 'J',
  BININT1 = 'K',
  BININT2 = 'M',
  NONE = 'N',
  BINPERSID = 'Q',
  REDUCE = 'R',
  BINSTRING = 'T',
  SHORT_BINSTRING = 'U',
  BINUNICODE = 'X',
  APPEND = 'a',
  BUILD = 'b',
  GLOBAL = 'c',
  DICT = 'd',
  EMPTY_DICT = '}',
  APPENDS = 'e',
  BINGET = 'h',
  LONG_BINGET = 'j',
  LIST = 'l',
  EMPTY_LIST = ']',
  BINPUT = 'q',
  LONG_BINPUT = 'r',
  SETITEM = 's',
  TUPLE = 't',
  EMPTY_TUPLE = ')',
  SETITEMS = 'u',
  BINBYTES = 'B',
  SHORT_BINBYTES = 'C',
  PROTO = 0x80,
  NEWOBJ = 0x81,
  TUPLE1 = 0x85,
  TUPLE2 = 0x86,
  TUPLE3 = 0x87,
  NEWTRUE = 0x88,
  NEWFALSE = 0x89,
  LONG1 = 0x8a,
  LONG4 = 0x8b,
  SHORT_BINUNICODE = 0x8c,
  BINUNICODE8 = 0x8d,
  BINBYTES8 = 0x8e,
  STACK_GLOBAL = 0x93,
  MEMOIZE = 0x94,
  FRAME = 0x95,
};

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// The interpreter
// ---------------------------------------------------------------------------------------------------------
class Unpickler {
 public:
  Unpickler(const unsigned char* data, size_t size, const std::string& where, const PickleLimits& limits)
      : data_(data), size_(size), where_(where), limits_(limits) {}

  PickleDocument run() {
    while (true) {
      op_pos_ = pos_;
      const unsigned char op = read_u8("opcode");
      if (op == STOP) {
        doc_.root_ = pop("STOP");
        doc_.bytes_used_ = pos_;
        return std::move(doc_);
      }
      step(op);
    }
  }

 private:
  // -- errors and raw reads ------------------------------------------------------------------------------
  [[noreturn]] void fail(const std::string& what) const {
    throw Error(where_ + ": " + what + " (pickle byte " + std::to_string(op_pos_) + ")");
  }

  const unsigned char* take(uint64_t n, const char* what) {
    if (n > size_ - pos_)
      fail(std::string("truncated pickle: ") + what + " needs " + std::to_string(n) + " bytes, " +
           std::to_string(size_ - pos_) + " left");
    const unsigned char* p = data_ + pos_;
    pos_ += static_cast<size_t>(n);
    return p;
  }
  uint64_t read_le(int bytes, const char* what) {
    const unsigned char* p = take(static_cast<uint64_t>(bytes), what);
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  unsigned char read_u8(const char* what) { return *take(1, what); }

  // -- values, stack, memo -------------------------------------------------------------------------------
  PickleValue* make(Kind kind) {
    if (doc_.values_->size() >= limits_.max_values)
      fail("pickle builds more than " + std::to_string(limits_.max_values) + " objects");
    doc_.values_->emplace_back();
    PickleValue* v = &doc_.values_->back();
    v->kind = kind;
    return v;
  }
  void count_references(uint64_t n) {
    references_ += n;
    if (references_ > limits_.max_references)
      fail("pickle containers hold more than " + std::to_string(limits_.max_references) + " items");
  }
  PickleValue* make_sequence(Kind kind, std::vector<PickleValue*> items) {
    count_references(items.size());
    PickleValue* v = make(kind);
    v->items.assign(items.begin(), items.end());
    return v;
  }
  void push(PickleValue* v) {
    if (stack_.size() >= limits_.max_stack) fail("pickle stack deeper than " + std::to_string(limits_.max_stack));
    stack_.push_back(v);
  }
  PickleValue* pop(const char* op) {
    if (stack_.size() <= floor()) fail(std::string(op) + " on an empty stack");
    PickleValue* v = stack_.back();
    stack_.pop_back();
    return v;
  }
  PickleValue* top(const char* op) {
    if (stack_.size() <= floor()) fail(std::string(op) + " on an empty stack");
    return stack_.back();
  }
  size_t floor() const { return marks_.empty() ? 0 : marks_.back(); }
  std::vector<PickleValue*> pop_to_mark(const char* op) {
    if (marks_.empty()) fail(std::string(op) + " without a MARK");
    const size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<PickleValue*> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }
  void memo_put(uint64_t index, const char* op) {
    PickleValue* v = top(op);
    if (memo_.size() >= limits_.max_memo && !memo_.count(index))
      fail("pickle memo holds more than " + std::to_string(limits_.max_memo) + " entries");
    memo_[index] = v;
  }
  void memo_get(uint64_t index) {
    auto it = memo_.find(index);
    if (it == memo_.end()) fail("pickle refers to memo entry " + std::to_string(index) + ", never stored");
    push(it->second);
  }

  PickleValue* make_int(int64_t i) {
    PickleValue* v = make(Kind::Int);
    v->integer = i;
    return v;
  }
  PickleValue* make_text(Kind kind, uint64_t length, const char* op) {
    if (length > limits_.max_string)
      fail(std::string(op) + " of " + std::to_string(length) + " bytes (limit " + std::to_string(limits_.max_string) +
           ")");
    const unsigned char* p = take(length, op);
    PickleValue* v = make(kind);
    v->text.assign(reinterpret_cast<const char*>(p), static_cast<size_t>(length));
    return v;
  }
  // A little-endian two's complement integer of n bytes (LONG1 / LONG4).
  PickleValue* make_long(uint64_t n) {
    if (n > 8) fail("integer wider than 64 bits");
    const unsigned char* p = take(n, "LONG");
    uint64_t u = 0;
    for (uint64_t i = n; i-- > 0;) u = (u << 8) | p[i];
    if (n > 0 && n < 8 && (p[n - 1] & 0x80)) u |= ~uint64_t(0) << (8 * n);  // sign-extend
    int64_t value;
    std::memcpy(&value, &u, sizeof value);
    return make_int(value);
  }
  std::string read_line(const char* op) {
    std::string line;
    while (true) {
      const unsigned char c = read_u8(op);
      if (c == '\n') return line;
      if (line.size() >= 256) fail(std::string(op) + " name longer than 256 bytes");
      line.push_back(static_cast<char>(c));
    }
  }

  // -- one opcode -----------------------------------------------------------------------------------------
  void step(unsigned char op) {
    switch (op) {
      case PROTO: {
        const unsigned version = read_u8("PROTO");
        if (version > 5) fail("unsupported pickle protocol " + std::to_string(version));
        break;
      }
      case FRAME:
        read_le(8, "FRAME");
        break;  // framing is a hint for buffered readers; all is in memory
      case MARK:
        if (marks_.size() >= limits_.max_marks) fail("more than " + std::to_string(limits_.max_marks) + " open MARKs");
        marks_.push_back(stack_.size());
        break;
      case POP:
        pop("POP");
        break;
      case POP_MARK:
        pop_to_mark("POP_MARK");
        break;
      case DUP:
        push(top("DUP"));
        break;

      case NONE:
        push(make(Kind::None));
        break;
      case NEWTRUE:
      case NEWFALSE: {
        PickleValue* v = make(Kind::Bool);
        v->integer = op == NEWTRUE;
        push(v);
        break;
      }
      case BININT: {
        const auto u = static_cast<uint32_t>(read_le(4, "BININT"));
        int32_t i;
        std::memcpy(&i, &u, sizeof i);
        push(make_int(i));
        break;
      }
      case BININT1:
        push(make_int(static_cast<int64_t>(read_le(1, "BININT1"))));
        break;
      case BININT2:
        push(make_int(static_cast<int64_t>(read_le(2, "BININT2"))));
        break;
      case LONG1:
        push(make_long(read_le(1, "LONG1")));
        break;
      case LONG4:
        push(make_long(read_le(4, "LONG4")));
        break;
      case BINFLOAT: {
        const unsigned char* p = take(8, "BINFLOAT");
        uint64_t u = 0;
        for (int i = 0; i < 8; ++i) u = (u << 8) | p[i];  // big-endian
        PickleValue* v = make(Kind::Float);
        std::memcpy(&v->real, &u, sizeof v->real);
        push(v);
        break;
      }
      case SHORT_BINUNICODE:
        push(make_text(Kind::String, read_le(1, "SHORT_BINUNICODE"), "SHORT_BINUNICODE"));
        break;
      case BINUNICODE:
        push(make_text(Kind::String, read_le(4, "BINUNICODE"), "BINUNICODE"));
        break;
      case BINUNICODE8:
        push(make_text(Kind::String, read_le(8, "BINUNICODE8"), "BINUNICODE8"));
        break;
      case SHORT_BINSTRING:
        push(make_text(Kind::String, read_le(1, "SHORT_BINSTRING"), "SHORT_BINSTRING"));
        break;
      case BINSTRING: {
        const uint64_t n = read_le(4, "BINSTRING");
        if (n > 0x7fffffffu) fail("BINSTRING with a negative length");
        push(make_text(Kind::String, n, "BINSTRING"));
        break;
      }
      case SHORT_BINBYTES:
        push(make_text(Kind::Bytes, read_le(1, "SHORT_BINBYTES"), "SHORT_BINBYTES"));
        break;
      case BINBYTES:
        push(make_text(Kind::Bytes, read_le(4, "BINBYTES"), "BINBYTES"));
        break;
      case BINBYTES8:
        push(make_text(Kind::Bytes, read_le(8, "BINBYTES8"), "BINBYTES8"));
        break;

      case EMPTY_TUPLE:
        push(make(Kind::Tuple));
        break;
      case EMPTY_LIST:
        push(make(Kind::List));
        break;
      case EMPTY_DICT:
        push(make(Kind::Dict));
        break;
      case TUPLE1:
      case TUPLE2:
      case TUPLE3: {
        const size_t n = op - TUPLE1 + 1;
        std::vector<PickleValue*> items(n);
        for (size_t i = n; i-- > 0;) items[i] = pop("TUPLEn");
        push(make_sequence(Kind::Tuple, std::move(items)));
        break;
      }
      case TUPLE:
        push(make_sequence(Kind::Tuple, pop_to_mark("TUPLE")));
        break;
      case LIST:
        push(make_sequence(Kind::List, pop_to_mark("LIST")));
        break;
      case DICT: {
        auto items = pop_to_mark("DICT");
        if (items.size() % 2) fail("DICT with an odd number of items");
        push(make_sequence(Kind::Dict, std::move(items)));
        break;
      }
      case APPEND: {
        PickleValue* v = pop("APPEND");
        append(top("APPEND"), {v}, Kind::List, "APPEND");
        break;
      }
      case APPENDS: {
        auto items = pop_to_mark("APPENDS");
        append(top("APPENDS"), items, Kind::List, "APPENDS");
        break;
      }
      case SETITEM: {
        PickleValue* value = pop("SETITEM");
        PickleValue* key = pop("SETITEM");
        append(top("SETITEM"), {key, value}, Kind::Dict, "SETITEM");
        break;
      }
      case SETITEMS: {
        auto items = pop_to_mark("SETITEMS");
        if (items.size() % 2) fail("SETITEMS with an odd number of items");
        append(top("SETITEMS"), items, Kind::Dict, "SETITEMS");
        break;
      }

      case BINPUT:
        memo_put(read_le(1, "BINPUT"), "BINPUT");
        break;
      case LONG_BINPUT:
        memo_put(read_le(4, "LONG_BINPUT"), "LONG_BINPUT");
        break;
      case MEMOIZE:
        memo_put(memo_.size(), "MEMOIZE");
        break;
      case BINGET:
        memo_get(read_le(1, "BINGET"));
        break;
      case LONG_BINGET:
        memo_get(read_le(4, "LONG_BINGET"));
        break;

      case GLOBAL: {
        std::string module = read_line("GLOBAL");
        std::string name = read_line("GLOBAL");
        push(resolve_global(module + "." + name));
        break;
      }
      case STACK_GLOBAL: {
        const PickleValue* name = pop("STACK_GLOBAL");
        const PickleValue* module = pop("STACK_GLOBAL");
        if (!name->is(Kind::String) || !module->is(Kind::String)) fail("STACK_GLOBAL needs two strings");
        push(resolve_global(module->text + "." + name->text));
        break;
      }
      case REDUCE: {
        PickleValue* args = pop("REDUCE");
        PickleValue* callable = pop("REDUCE");
        push(call(callable, args, "REDUCE"));
        break;
      }
      case NEWOBJ: {
        PickleValue* args = pop("NEWOBJ");
        PickleValue* cls = pop("NEWOBJ");
        push(call(cls, args, "NEWOBJ"));
        break;
      }
      case BUILD: {
        pop("BUILD");  // the state: OrderedDict's _metadata, a Namespace's fields; nothing we need
        const PickleValue* target = top("BUILD");
        if (!target->is(Kind::Dict) && !target->is(Kind::Object) && !target->is(Kind::Tensor))
          fail(std::string("BUILD on ") + pickle_kind_name(target->kind));
        break;
      }
      case BINPERSID:
        push(persistent_load(pop("BINPERSID")));
        break;

      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op);
        fail(std::string("unsupported pickle opcode ") + hex + " (not one torch.save writes)");
      }
    }
  }

  void append(PickleValue* target, const std::vector<PickleValue*>& items, Kind want, const char* op) {
    if (!target->is(want))
      fail(std::string(op) + " on " + pickle_kind_name(target->kind) + ", expected " + pickle_kind_name(want));
    count_references(items.size());
    target->items.insert(target->items.end(), items.begin(), items.end());
  }

  PickleValue* resolve_global(const std::string& qualified) {
    if (!find_global(qualified))
      fail("refusing the global '" + qualified +
           "': a checkpoint may only hold tensors, state dicts and argparse.Namespace");
    PickleValue* v = make(Kind::Global);
    v->text = qualified;
    return v;
  }

  // -- calls of allowed globals ---------------------------------------------------------------------------
  PickleValue* call(PickleValue* callable, PickleValue* args, const char* op) {
    if (!callable->is(Kind::Global)) fail(std::string(op) + " on " + pickle_kind_name(callable->kind));
    if (!args->is(Kind::Tuple)) fail(std::string(op) + " arguments are " + pickle_kind_name(args->kind));
    const AllowedGlobal* g = find_global(callable->text);
    const auto& a = args->items;
    switch (g->callable) {
      case Callable::OrderedDict:
        if (!a.empty()) fail("OrderedDict built from arguments is not supported");
        return make(Kind::Dict);
      case Callable::Namespace: {
        PickleValue* v = make(Kind::Object);
        v->text = callable->text;
        return v;
      }
      case Callable::RebuildTensor:
        if (a.size() != 4) fail(callable->text + " takes 4 arguments, got " + std::to_string(a.size()));
        return rebuild_tensor(a);
      case Callable::RebuildTensorV2:
        if (a.size() != 6 && a.size() != 7)
          fail(callable->text + " takes 6 or 7 arguments, got " + std::to_string(a.size()));
        return rebuild_tensor(a);
      case Callable::RebuildParameter:
        if (a.size() < 3 || a.size() > 4 || !a[0]->is(Kind::Tensor))
          fail(callable->text + " needs a tensor and 2 or 3 more arguments");
        // A Parameter is its tensor; requires_grad and hooks do not matter for weights. (Every value lives in the
        // arena as non-const; the const in `items` is for the document's readers.)
        return const_cast<PickleValue*>(a[0]);
      case Callable::StorageType:
        break;
    }
    fail("calling " + callable->text + " is not supported");
  }

  std::vector<int64_t> int_tuple(const PickleValue* v, const char* what) {
    if (!v->is(Kind::Tuple)) fail(std::string("tensor ") + what + " is " + pickle_kind_name(v->kind));
    if (v->items.size() > static_cast<size_t>(limits_.max_tensor_dims))
      fail(std::string("tensor with more than ") + std::to_string(limits_.max_tensor_dims) + " dimensions");
    std::vector<int64_t> out;
    for (const PickleValue* item : v->items) {
      if (!item->is(Kind::Int) || item->integer < 0)
        fail(std::string("tensor ") + what + " holds a negative or non-integer entry");
      out.push_back(item->integer);
    }
    return out;
  }

  // _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad, backward_hooks[, metadata]):
  // checks that every element the view addresses lies inside the storage.
  PickleValue* rebuild_tensor(const std::vector<const PickleValue*>& a) {
    if (!a[0]->is(Kind::Storage)) fail(std::string("tensor storage is ") + pickle_kind_name(a[0]->kind));
    if (!a[1]->is(Kind::Int) || a[1]->integer < 0) fail("tensor storage offset is not a non-negative integer");
    std::vector<int64_t> sizes = int_tuple(a[2], "size");
    std::vector<int64_t> strides = int_tuple(a[3], "stride");
    if (sizes.size() != strides.size())
      fail("tensor has " + std::to_string(sizes.size()) + " sizes but " + std::to_string(strides.size()) + " strides");
    const PickleValue* storage = a[0];
    int64_t last = a[1]->integer, numel = 1;  // last element addressed
    bool empty = false, overflow = false;
    for (size_t d = 0; d < sizes.size(); ++d) {
      if (sizes[d] == 0) empty = true;
      overflow |= __builtin_mul_overflow(numel, sizes[d], &numel);
      int64_t span;
      overflow |= __builtin_mul_overflow(sizes[d] > 0 ? sizes[d] - 1 : 0, strides[d], &span);
      overflow |= __builtin_add_overflow(last, span, &last);
    }
    if (overflow) fail("tensor size and stride overflow");
    if (!empty && last >= storage->integer)
      fail("storage '" + storage->text + "' holds " + std::to_string(storage->integer) +
           " elements, too few for a tensor of size " + dims(sizes) + ", stride " + dims(strides) + " at offset " +
           std::to_string(a[1]->integer));
    count_references(1);
    PickleValue* t = make(Kind::Tensor);
    t->items = {storage};
    t->integer = a[1]->integer;
    t->sizes = std::move(sizes);
    t->strides = std::move(strides);
    return t;
  }

  static std::string dims(const std::vector<int64_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ", " : "") + std::to_string(v[i]);
    return s + "]";
  }

  // torch.save's persistent ids: ('storage', StorageType, key, location, numel) in zip files, with a sixth
  // field view_metadata (None) in legacy files.
  PickleValue* persistent_load(const PickleValue* pid) {
    if (!pid->is(Kind::Tuple) || pid->items.size() < 5 || pid->items.size() > 6)
      fail("persistent id is not a storage reference ('storage', type, key, location, numel)");
    const auto& f = pid->items;
    if (!f[0]->is(Kind::String) || f[0]->text != "storage")
      fail("persistent id of an unsupported kind (only 'storage')");
    const AllowedGlobal* g = f[1]->is(Kind::Global) ? find_global(f[1]->text) : nullptr;
    if (!g || g->callable != Callable::StorageType) fail("persistent id names no storage type");
    if (!f[2]->is(Kind::String) || f[2]->text.empty() || f[2]->text.size() > 256)
      fail("storage key is not a short string");
    if (!f[4]->is(Kind::Int) || f[4]->integer < 0) fail("storage size is not a non-negative integer");
    if (f.size() == 6 && !f[5]->is(Kind::None)) fail("storage views (legacy view_metadata) are not supported");
    const auto element = static_cast<int64_t>(c10::elementSize(g->storage_dtype));
    if (f[4]->integer > std::numeric_limits<int64_t>::max() / element) fail("storage size overflows");
    PickleValue* storage = make(Kind::Storage);
    storage->text = f[2]->text;
    storage->dtype = g->storage_dtype;
    storage->integer = f[4]->integer;
    doc_.storages_.push_back(storage);
    return storage;
  }

  const unsigned char* data_;
  size_t size_;
  size_t pos_ = 0, op_pos_ = 0;
  const std::string& where_;
  PickleLimits limits_;
  PickleDocument doc_;
  std::vector<PickleValue*> stack_;
  std::vector<size_t> marks_;
  std::unordered_map<uint64_t, PickleValue*> memo_;
  uint64_t references_ = 0;
};

PickleDocument parse_torch_pickle(const unsigned char* data, size_t size, const std::string& where,
                                  const PickleLimits& limits) {
  return Unpickler(data, size, where, limits).run();
}

}  // namespace lit
