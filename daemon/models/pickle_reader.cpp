#include "daemon/models/pickle_reader.hpp"

// ATen/EmptyTensor.h rather than ATen/ops/empty.h: the latter pulls in ATen/core/List.h, which
// clang rejects in C++20 mode with libtorch 1.13 (the clang fuzz build compiles this file).
#include <ATen/EmptyTensor.h>

#include <bit>
#include <cctype>
#include <cstdio>
#include <cstring>
#include <unordered_map>
#include <variant>

namespace heygem::models::pickle {
namespace {

using checkpoint_io::ByteCursor;
using Ref = std::uint32_t;  // index into the unpickler's node arena

// Inside the unpickler objects live in an arena and refer to each other by index: pickles share
// mutable containers through the memo, and an arena keeps that (and malicious cycles) harmless.
struct Global {
  std::string module;
  std::string name;
};
struct ListNode {
  std::vector<Ref> items;
};
struct TupleNode {
  std::vector<Ref> items;
};
struct DictNode {
  std::vector<std::pair<Ref, Ref>> items;
  bool ordered = false;  // collections.OrderedDict, whose attributes BUILD may set
};
struct StorageNode {
  StorageSlice slice;
};
using Node = std::variant<std::monostate, bool, std::int64_t, double, std::string, ListNode, TupleNode,
                          DictNode, at::Tensor, Global, StorageNode>;

// Converting to the public tree: deeper nesting, cycles or shared references that multiply the
// tree beyond this are refused rather than exhausting the stack or memory.
constexpr int kMaxDepth = 200;
constexpr std::uint64_t kBaseObjectBudget = 1u << 20;
constexpr std::size_t kMaxGlobalNameLength = 256;
constexpr int kHighestProtocol = 5;

std::optional<at::ScalarType> storage_class_dtype(std::string_view name) {
  static const std::pair<std::string_view, at::ScalarType> kStorages[] = {
      {"FloatStorage", at::ScalarType::Float},   {"DoubleStorage", at::ScalarType::Double},
      {"HalfStorage", at::ScalarType::Half},     {"BFloat16Storage", at::ScalarType::BFloat16},
      {"LongStorage", at::ScalarType::Long},     {"IntStorage", at::ScalarType::Int},
      {"ShortStorage", at::ScalarType::Short},   {"CharStorage", at::ScalarType::Char},
      {"ByteStorage", at::ScalarType::Byte},     {"BoolStorage", at::ScalarType::Bool},
  };
  for (const auto& [storage_name, dtype] : kStorages)
    if (storage_name == name) return dtype;
  return std::nullopt;
}

bool is_allowed_global(const Global& global) {
  if (global.module == "collections") return global.name == "OrderedDict";
  if (global.module == "torch._utils")
    return global.name == "_rebuild_tensor_v2" || global.name == "_rebuild_tensor" ||
           global.name == "_rebuild_parameter";
  if (global.module == "torch") return storage_class_dtype(global.name).has_value();
  return false;
}

const char* opcode_name(std::uint8_t op) {
  switch (op) {
    case 0x80: return "PROTO";
    case 0x95: return "FRAME";
    case '.': return "STOP";
    case '(': return "MARK";
    case '0': return "POP";
    case '1': return "POP_MARK";
    case '2': return "DUP";
    case 'N': return "NONE";
    case 0x88: return "NEWTRUE";
    case 0x89: return "NEWFALSE";
    case 'J': return "BININT";
    case 'K': return "BININT1";
    case 'M': return "BININT2";
    case 0x8a: return "LONG1";
    case 0x8b: return "LONG4";
    case 'G': return "BINFLOAT";
    case 'X': return "BINUNICODE";
    case 0x8c: return "SHORT_BINUNICODE";
    case 0x8d: return "BINUNICODE8";
    case 'T': return "BINSTRING";
    case 'U': return "SHORT_BINSTRING";
    case ']': return "EMPTY_LIST";
    case 'a': return "APPEND";
    case 'e': return "APPENDS";
    case 'l': return "LIST";
    case ')': return "EMPTY_TUPLE";
    case 't': return "TUPLE";
    case 0x85: return "TUPLE1";
    case 0x86: return "TUPLE2";
    case 0x87: return "TUPLE3";
    case '}': return "EMPTY_DICT";
    case 'd': return "DICT";
    case 's': return "SETITEM";
    case 'u': return "SETITEMS";
    case 'q': return "BINPUT";
    case 'r': return "LONG_BINPUT";
    case 0x94: return "MEMOIZE";
    case 'h': return "BINGET";
    case 'j': return "LONG_BINGET";
    case 'c': return "GLOBAL";
    case 0x93: return "STACK_GLOBAL";
    case 'R': return "REDUCE";
    case 'b': return "BUILD";
    case 'Q': return "BINPERSID";
    default: return nullptr;
  }
}

std::string_view node_kind(const Node& node) {
  static constexpr std::string_view kNames[] = {"None",  "bool",  "int",    "float",  "str",    "list",
                                                "tuple", "dict",  "tensor", "global", "storage"};
  return kNames[node.index()];
}

class Unpickler {
 public:
  Unpickler(ByteCursor& in, StorageResolver* storages) : in_(in), storages_(storages) {}

  CheckpointObject run() {
    for (;;) {
      op_offset_ = in_.position();
      op_ = in_.take_byte("pickle opcode");
      if (op_ == '.') {
        if (stack_.empty()) error("STOP with an empty stack");
        object_budget_ = kBaseObjectBudget + 4 * nodes_.size();
        return convert(stack_.back(), 0);
      }
      execute();
    }
  }

 private:
  void execute() {
    switch (op_) {
      case 0x80: {
        const int protocol = in_.take_byte("protocol number");
        if (protocol > kHighestProtocol) error("pickle protocol " + std::to_string(protocol));
        return;
      }
      case 0x95: in_.take(8, "frame length"); return;
      case '(': marks_.push_back(stack_.size()); return;
      case '0': return pop_or_pop_mark();
      case '1': pop_to_mark(); return;
      case '2': return push_ref(top());
      case 'N': return push(std::monostate{});
      case 0x88: return push(true);
      case 0x89: return push(false);
      case 'J': return push(static_cast<std::int64_t>(static_cast<std::int32_t>(read_le(4, "BININT"))));
      case 'K': return push(static_cast<std::int64_t>(read_le(1, "BININT1")));
      case 'M': return push(static_cast<std::int64_t>(read_le(2, "BININT2")));
      case 0x8a: return push(read_long(read_le(1, "LONG1 length")));
      case 0x8b: return push(read_long(read_le(4, "LONG4 length")));
      case 'G': return push(read_binfloat());
      case 'X': return push(read_string(read_le(4, "BINUNICODE length")));
      case 0x8c: return push(read_string(read_le(1, "SHORT_BINUNICODE length")));
      case 0x8d: return push(read_string(read_le(8, "BINUNICODE8 length")));
      case 'T': {
        const auto length = static_cast<std::int32_t>(read_le(4, "BINSTRING length"));
        if (length < 0) error("negative string length");
        return push(read_string(static_cast<std::uint64_t>(length)));
      }
      case 'U': return push(read_string(read_le(1, "SHORT_BINSTRING length")));
      case ']': return push(ListNode{});
      case 'a': {
        const Ref item = pop();
        return as<ListNode>(top(), "APPEND target").items.push_back(item);
      }
      case 'e': {
        auto items = pop_to_mark();
        auto& list = as<ListNode>(top(), "APPENDS target").items;
        list.insert(list.end(), items.begin(), items.end());
        return;
      }
      case 'l': return push(ListNode{pop_to_mark()});
      case ')': return push(TupleNode{});
      case 't': return push(TupleNode{pop_to_mark()});
      case 0x85: return push(TupleNode{pop_n(1)});
      case 0x86: return push(TupleNode{pop_n(2)});
      case 0x87: return push(TupleNode{pop_n(3)});
      case '}': return push(DictNode{});
      case 'd': {
        DictNode dict;
        add_pairs(dict, pop_to_mark());
        return push(std::move(dict));
      }
      case 's': {
        const auto pair = pop_n(2);
        return add_pairs(as<DictNode>(top(), "SETITEM target"), pair);
      }
      case 'u': {
        const auto items = pop_to_mark();
        return add_pairs(as<DictNode>(top(), "SETITEMS target"), items);
      }
      case 'q': memo_[static_cast<std::uint32_t>(read_le(1, "BINPUT index"))] = top(); return;
      case 'r': memo_[static_cast<std::uint32_t>(read_le(4, "LONG_BINPUT index"))] = top(); return;
      case 0x94: memo_[static_cast<std::uint32_t>(memo_.size())] = top(); return;
      case 'h': return push_ref(memo_get(read_le(1, "BINGET index")));
      case 'j': return push_ref(memo_get(read_le(4, "LONG_BINGET index")));
      case 'c': {
        Global global;
        global.module = read_line("GLOBAL module");
        global.name = read_line("GLOBAL name");
        return push_global(std::move(global));
      }
      case 0x93: {
        Global global;
        global.name = as<std::string>(pop(), "STACK_GLOBAL name");
        global.module = as<std::string>(pop(), "STACK_GLOBAL module");
        return push_global(std::move(global));
      }
      case 'R': return reduce();
      case 'b': return build();
      case 'Q': return persistent_load();
      default: {
        char hex[8];
        std::snprintf(hex, sizeof hex, "0x%02x", op_);
        fail_at(std::string("unsupported pickle opcode ") + hex +
                (std::isprint(op_) ? std::string(" ('") + static_cast<char>(op_) + "')" : std::string()));
      }
    }
  }

  // --- errors ---------------------------------------------------------------------------------

  [[noreturn]] void fail_at(const std::string& cause) const {
    checkpoint_io::fail(in_.source().name(),
                        "pickle: " + cause + " at offset " + std::to_string(op_offset_));
  }

  [[noreturn]] void error(const std::string& cause) const {
    const char* name = opcode_name(op_);
    fail_at(std::string(name ? name : "opcode") + ": " + cause);
  }

  // --- the stack --------------------------------------------------------------------------------

  std::size_t stack_floor() const { return marks_.empty() ? 0 : marks_.back(); }

  Ref top() const {
    if (stack_.size() <= stack_floor()) error("stack underflow");
    return stack_.back();
  }

  Ref pop() {
    const Ref ref = top();
    stack_.pop_back();
    return ref;
  }

  std::vector<Ref> pop_n(std::size_t count) {
    if (stack_.size() - stack_floor() < count) error("stack underflow");
    std::vector<Ref> items(stack_.end() - static_cast<std::ptrdiff_t>(count), stack_.end());
    stack_.resize(stack_.size() - count);
    return items;
  }

  std::vector<Ref> pop_to_mark() {
    if (marks_.empty()) error("no MARK on the stack");
    const std::size_t mark = marks_.back();
    marks_.pop_back();
    std::vector<Ref> items(stack_.begin() + static_cast<std::ptrdiff_t>(mark), stack_.end());
    stack_.resize(mark);
    return items;
  }

  void pop_or_pop_mark() {
    if (stack_.size() > stack_floor()) {
      stack_.pop_back();
    } else {
      pop_to_mark();
    }
  }

  void push(Node node) {
    nodes_.push_back(std::move(node));
    push_ref(static_cast<Ref>(nodes_.size() - 1));
  }

  void push_ref(Ref ref) { stack_.push_back(ref); }

  template <class T>
  T& as(Ref ref, std::string_view what) {
    if (T* held = std::get_if<T>(&nodes_[ref])) return *held;
    error(std::string(what) + " is a " + std::string(node_kind(nodes_[ref])) + ", expected a " +
          std::string(node_kind(Node(std::in_place_type<T>))));
  }

  Ref memo_get(std::uint64_t index) {
    const auto found = memo_.find(static_cast<std::uint32_t>(index));
    if (found == memo_.end()) error("memo index " + std::to_string(index) + " was never stored");
    return found->second;
  }

  void add_pairs(DictNode& dict, const std::vector<Ref>& items) {
    if (items.size() % 2 != 0) error("odd number of items for a dict");
    for (std::size_t i = 0; i < items.size(); i += 2) dict.items.emplace_back(items[i], items[i + 1]);
  }

  // --- reading arguments ------------------------------------------------------------------------

  std::uint64_t read_le(std::size_t bytes, std::string_view what) {
    return checkpoint_io::load_le(in_.take(bytes, what));
  }

  std::int64_t read_long(std::uint64_t length) {
    if (length > 8) error("integer of " + std::to_string(length) + " bytes does not fit in 64 bits");
    const auto bytes = in_.take(length, "long integer");
    std::uint64_t value = checkpoint_io::load_le(bytes);
    if (length > 0 && length < 8 && (bytes[length - 1] & 0x80)) value |= ~std::uint64_t{0} << (8 * length);
    return static_cast<std::int64_t>(value);
  }

  double read_binfloat() {
    const auto bytes = in_.take(8, "BINFLOAT");
    std::uint64_t bits = 0;
    for (const std::uint8_t byte : bytes) bits = (bits << 8) | byte;  // big-endian
    return std::bit_cast<double>(bits);
  }

  std::string read_string(std::uint64_t length) {
    const auto bytes = in_.take(length, "string");
    return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }

  std::string read_line(std::string_view what) {
    std::string line;
    for (;;) {
      const char c = static_cast<char>(in_.take_byte(what));
      if (c == '\n') return line;
      if (line.size() == kMaxGlobalNameLength) error(std::string(what) + " longer than 256 bytes");
      line.push_back(c);
    }
  }

  // --- globals and calls ------------------------------------------------------------------------

  void push_global(Global global) {
    if (!is_allowed_global(global))
      error("refusing global '" + global.module + "." + global.name + "' (not a state-dict type)");
    push(std::move(global));
  }

  void reduce() {
    const Ref args_ref = pop();
    const Global callable = as<Global>(pop(), "REDUCE callable");
    const std::vector<Ref> args = as<TupleNode>(args_ref, "REDUCE arguments").items;
    const std::string qualified = callable.module + "." + callable.name;
    if (qualified == "collections.OrderedDict") {
      if (!args.empty()) error("OrderedDict called with arguments");
      DictNode dict;
      dict.ordered = true;
      return push(std::move(dict));
    }
    if (qualified == "torch._utils._rebuild_tensor_v2") return push(rebuild_tensor(args, true));
    if (qualified == "torch._utils._rebuild_tensor") return push(rebuild_tensor(args, false));
    if (qualified == "torch._utils._rebuild_parameter") {
      if (args.size() != 3) error("_rebuild_parameter takes 3 arguments, got " + std::to_string(args.size()));
      require_empty_hooks(args[2]);
      return push(as<at::Tensor>(args[0], "_rebuild_parameter data"));
    }
    error("'" + qualified + "' cannot be called");
  }

  void require_empty_hooks(Ref hooks) {
    if (!as<DictNode>(hooks, "backward_hooks").items.empty()) error("tensor with backward hooks");
  }

  // _rebuild_tensor_v2(storage, offset, size, stride, requires_grad, backward_hooks[, metadata])
  // and _rebuild_tensor(storage, offset, size, stride). requires_grad is irrelevant for inference.
  at::Tensor rebuild_tensor(const std::vector<Ref>& args, bool v2) {
    const std::size_t count = args.size();
    if (v2 ? (count != 6 && count != 7) : count != 4)
      error("tensor rebuild with " + std::to_string(count) + " arguments");
    const StorageSlice& slice = as<StorageNode>(args[0], "tensor storage").slice;
    const std::int64_t offset = as<std::int64_t>(args[1], "tensor storage offset");
    const auto sizes = int_tuple(args[2], "tensor size");
    const auto strides = int_tuple(args[3], "tensor stride");
    if (v2) {
      as<bool>(args[4], "requires_grad");
      require_empty_hooks(args[5]);
      if (count == 7 && !std::holds_alternative<std::monostate>(nodes_[args[6]]))
        as<DictNode>(args[6], "tensor metadata");
    }
    return make_tensor_view(slice, offset, sizes, strides, in_.source().name());
  }

  std::vector<std::int64_t> int_tuple(Ref ref, std::string_view what) {
    std::vector<std::int64_t> values;
    for (const Ref item : as<TupleNode>(ref, what).items) values.push_back(as<std::int64_t>(item, what));
    return values;
  }

  // BUILD on an OrderedDict sets instance attributes (state_dict()'s `_metadata`, the module
  // versions). They carry nothing the models need and are dropped.
  void build() {
    const Ref state = pop();
    auto& target = as<DictNode>(top(), "BUILD target");
    if (!target.ordered) error("BUILD on a plain dict");
    as<DictNode>(state, "BUILD state");
  }

  void persistent_load() {
    const Ref pid = pop();
    if (!storages_) error("persistent id in a pickle that cannot reference storages");
    const StorageId id = storage_id(as<TupleNode>(pid, "persistent id").items);
    push(StorageNode{storages_->resolve(id)});
  }

  StorageId storage_id(const std::vector<Ref>& items) {
    if (items.size() != 5 && items.size() != 6)
      error("persistent id with " + std::to_string(items.size()) + " fields, expected 5 or 6");
    if (as<std::string>(items[0], "persistent id tag") != "storage")
      error("persistent id tag '" + as<std::string>(items[0], "persistent id tag") + "'");
    const Global& type = as<Global>(items[1], "storage type");
    const auto dtype = type.module == "torch" ? storage_class_dtype(type.name) : std::nullopt;
    if (!dtype) error("'" + type.module + "." + type.name + "' is not a storage type");
    StorageId id;
    id.dtype = *dtype;
    id.key = as<std::string>(items[2], "storage key");
    id.location = as<std::string>(items[3], "storage location");
    id.numel = as<std::int64_t>(items[4], "storage size");
    if (id.numel < 0) error("negative storage size");
    if (items.size() == 6 && !std::holds_alternative<std::monostate>(nodes_[items[5]])) {
      const auto& view = as<TupleNode>(items[5], "storage view").items;
      if (view.size() != 3) error("storage view with " + std::to_string(view.size()) + " fields");
      id.view = StorageId::View{as<std::string>(view[0], "storage view key"),
                                as<std::int64_t>(view[1], "storage view offset"),
                                as<std::int64_t>(view[2], "storage view size")};
    }
    return id;
  }

  // --- conversion to the public tree ------------------------------------------------------------

  CheckpointObject convert(Ref ref, int depth) {
    if (depth > kMaxDepth) fail_at("object nesting deeper than " + std::to_string(kMaxDepth) + " (or cyclic)");
    if (object_budget_-- == 0) fail_at("shared references expand the object tree beyond its size limit");
    return std::visit([&](const auto& node) { return convert_node(node, depth); }, nodes_[ref]);
  }

  template <class T>
  CheckpointObject convert_node(const T& scalar, int) {
    return CheckpointObject(scalar);
  }

  CheckpointObject convert_node(const ListNode& list, int depth) {
    return CheckpointObject(convert_items(list.items, depth));
  }

  CheckpointObject convert_node(const TupleNode& tuple, int depth) {
    return CheckpointObject(CheckpointTuple{convert_items(tuple.items, depth)});
  }

  CheckpointObject convert_node(const DictNode& dict, int depth) {
    CheckpointDict out;
    std::unordered_map<CheckpointKey, std::size_t> index;
    for (const auto& [key_ref, value_ref] : dict.items) {
      CheckpointKey key = dict_key(key_ref);
      CheckpointObject value = convert(value_ref, depth + 1);
      // Python dict semantics: a repeated key keeps its first position and takes the last value.
      const std::size_t next = out.items.size();
      const auto [slot, fresh] = index.emplace(key, next);
      if (fresh) {
        out.items.emplace_back(std::move(key), std::move(value));
      } else {
        out.items[slot->second].second = std::move(value);
      }
    }
    return CheckpointObject(std::move(out));
  }

  CheckpointObject convert_node(const Global& global, int) {
    fail_at("a bare global ('" + global.module + "." + global.name + "') in the object tree");
  }

  CheckpointObject convert_node(const StorageNode&, int) { fail_at("a bare storage in the object tree"); }

  std::vector<CheckpointObject> convert_items(const std::vector<Ref>& items, int depth) {
    std::vector<CheckpointObject> out;
    out.reserve(items.size());
    for (const Ref item : items) out.push_back(convert(item, depth + 1));
    return out;
  }

  CheckpointKey dict_key(Ref ref) {
    const Node& node = nodes_[ref];
    if (const auto* text = std::get_if<std::string>(&node)) return *text;
    if (const auto* number = std::get_if<std::int64_t>(&node)) return *number;
    fail_at("dict key is a " + std::string(node_kind(node)) + " (only str and int keys are supported)");
  }

  ByteCursor& in_;
  StorageResolver* storages_;
  std::vector<Node> nodes_;
  std::vector<Ref> stack_;
  std::vector<std::size_t> marks_;  // stack sizes at each MARK
  std::unordered_map<std::uint32_t, Ref> memo_;
  std::uint64_t op_offset_ = 0;
  std::uint8_t op_ = 0;
  std::uint64_t object_budget_ = 0;
};

// a * b + c without overflow, or nullopt.
std::optional<std::int64_t> checked_mul_add(std::int64_t a, std::int64_t b, std::int64_t c) {
  std::int64_t product = 0;
  std::int64_t sum = 0;
  if (__builtin_mul_overflow(a, b, &product) || __builtin_add_overflow(product, c, &sum)) return std::nullopt;
  return sum;
}

std::string join(const std::vector<std::int64_t>& values) {
  std::string text = "[";
  for (std::size_t i = 0; i < values.size(); ++i) text += (i ? "," : "") + std::to_string(values[i]);
  return text + "]";
}

}  // namespace

CheckpointObject read_pickle(ByteCursor& in, StorageResolver* storages) {
  return Unpickler(in, storages).run();
}

std::int64_t element_size(at::ScalarType dtype) {
  return static_cast<std::int64_t>(c10::elementSize(dtype));
}

at::Tensor allocate_storage(at::ScalarType dtype, std::int64_t numel) {
  return at::Tensor(at::detail::empty_cpu({numel}, dtype));
}

at::Tensor make_tensor_view(const StorageSlice& slice, std::int64_t offset,
                            const std::vector<std::int64_t>& sizes,
                            const std::vector<std::int64_t>& strides, std::string_view source) {
  const auto describe = [&] {
    return "tensor view (offset " + std::to_string(offset) + ", size " + join(sizes) + ", stride " +
           join(strides) + ") on a storage of " + std::to_string(slice.numel) + " elements";
  };
  if (sizes.size() != strides.size())
    checkpoint_io::fail(source, "pickle: " + describe() + ": size and stride differ in length");
  if (offset < 0) checkpoint_io::fail(source, "pickle: " + describe() + ": negative offset");
  // The last element the view touches must lie inside the storage slice.
  std::optional<std::int64_t> last = offset;
  bool empty = false;
  for (std::size_t d = 0; d < sizes.size() && last; ++d) {
    if (sizes[d] < 0 || strides[d] < 0)
      checkpoint_io::fail(source, "pickle: " + describe() + ": negative size or stride");
    if (sizes[d] == 0) empty = true;
    else last = checked_mul_add(sizes[d] - 1, strides[d], *last);
  }
  const bool inside = last && (empty ? offset <= slice.numel : *last < slice.numel);
  if (!inside) checkpoint_io::fail(source, "pickle: " + describe() + " reaches outside the storage");
  return at::Tensor(at::detail::empty_cpu({0}, slice.flat.scalar_type()))
      .set_(slice.flat.storage(), slice.offset + offset, sizes, strides);
}

}  // namespace heygem::models::pickle
