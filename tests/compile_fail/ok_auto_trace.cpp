// Which types the collector traces without a trace() function (aggregate
// reflection, gc.hpp and detail/reflect.hpp), checked on both compilers.
#include <array>
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>
#include <variant>
#include <vector>
#include <weakref/weakref.hpp>

using weakref::proxy;
using weakref::ref;
using weakref::Strong;
using weakref::gc::is_traced_v;
namespace wd = weakref::detail;

struct Node;

// Traced automatically: a plain aggregate with something the collector sees.
struct Link {
  std::string name;
  Strong<Link> next;
};
struct WeakOnly {
  ref<Node> r;
  proxy<Node> p;
};
struct Containers {
  std::vector<Strong<Node>> v;
  std::map<std::string, Strong<Node>> m;
  std::array<Strong<Node>, 2> a;
  std::optional<Strong<Node>> o;
  std::variant<int, Strong<Node>> var;
  std::pair<int, Strong<Node>> pair;
  std::tuple<std::string, ref<Node>> tuple;
  std::unique_ptr<Link> owned;
  weakref::WeakSet<Node> set;
};
struct Nested {
  Link inner;  // a nested aggregate holding a Strong
  int x = 0;
};
struct MoveOnly {
  std::unique_ptr<int> u;
  Strong<Node> s;
};
struct Immovable {
  std::mutex m;
  std::atomic<int> n{0};
  Strong<Node> s;
};
struct BitFields {
  std::uint32_t flags : 3;
  std::uint32_t more : 5;
  Strong<Node> s;
};
struct ConstMember {
  const Strong<Node> s;
};
struct SelfRecursive {  // contains itself through a vector: reflection stops
  std::vector<SelfRecursive> kids;
  Strong<Node> s;
};
struct OneElementArray {
  std::array<Strong<Node>, 1> a;
};
struct WithPath {  // std::filesystem::path is a range of paths
  std::filesystem::path p;
  Strong<Node> s;
};
static_assert(is_traced_v<Link>);
static_assert(is_traced_v<WeakOnly>);
static_assert(is_traced_v<Containers>);
static_assert(is_traced_v<Nested>);
static_assert(is_traced_v<MoveOnly>);
static_assert(is_traced_v<Immovable>);
static_assert(is_traced_v<BitFields>);
static_assert(is_traced_v<ConstMember>);
static_assert(is_traced_v<SelfRecursive>);
static_assert(is_traced_v<OneElementArray>);
static_assert(is_traced_v<WithPath>);
// Standard wrappers made directly are traced too.
static_assert(is_traced_v<std::vector<Strong<Node>>>);
static_assert(is_traced_v<std::optional<ref<Node>>>);
static_assert(wd::reflected_field_count<Link>() == 2);
static_assert(wd::reflected_field_count<Containers>() == 9);
static_assert(wd::reflected_field_count<BitFields>() == 3);

// Not traced: nothing to see.
struct Point {
  int x, y;
  std::string label;
  std::shared_ptr<int> shared;  // not a reference the collector counts
  Node* raw = nullptr;          // nor is a raw pointer
};
struct Empty {};
static_assert(!is_traced_v<Point>);
static_assert(!is_traced_v<Empty>);
static_assert(!is_traced_v<int>);
static_assert(!is_traced_v<std::string>);
static_assert(!is_traced_v<std::vector<int>>);

// Not reflected (documented limits): traced only with a trace() of their own.
struct Base {
  int b = 0;
};
struct WithBase : Base {
  Strong<Node> s;
};
struct EmptyBase {};
struct WithEmptyBase : EmptyBase {
  Strong<Node> s;
};
struct CArray {
  Strong<Node> kids[2];
};
struct AnonymousUnion {
  union {
    int i;
    float f;
  };
  Strong<Node> s;
};
struct ReferenceMember {
  Strong<Node>& borrowed;
};
struct NoDefault {
  explicit NoDefault(int) {}
};
struct NotDefaultInitializable {
  NoDefault d;
  Strong<Node> s;
};
class WithConstructor {
 public:
  WithConstructor() = default;
  Strong<Node> s;
};
class PrivateMember {
  Strong<Node> s;

 public:
  void set(Strong<Node> n) { s = std::move(n); }
};
struct OptedOut {
  Strong<Node> s;
};
template <>
inline constexpr bool weakref::gc::auto_trace<OptedOut> = false;
static_assert(!wd::reflectable<WithBase>);
static_assert(!wd::reflectable<WithEmptyBase>);
static_assert(!wd::reflectable<CArray>);
static_assert(!wd::reflectable<AnonymousUnion>);
static_assert(!wd::reflectable<ReferenceMember>);
static_assert(!wd::reflectable<NotDefaultInitializable>);
static_assert(!is_traced_v<WithBase>);
static_assert(!is_traced_v<WithEmptyBase>);
static_assert(!is_traced_v<CArray>);
static_assert(!is_traced_v<AnonymousUnion>);
static_assert(!is_traced_v<ReferenceMember>);
static_assert(!is_traced_v<NotDefaultInitializable>);
static_assert(!is_traced_v<WithConstructor>);
static_assert(!is_traced_v<PrivateMember>);
static_assert(!is_traced_v<OptedOut>);

// A user trace() wins over reflection.
struct Custom {
  Strong<Node> seen, hidden;
  void trace(weakref::gc::Visitor& v) { v(seen); }
};
static_assert(is_traced_v<Custom>);
static_assert(!wd::auto_traced<Custom>);

// Up to 32 fields are reflected.
struct Wide32 {
  Strong<Node> f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
      f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31;
};
struct Wide33 {
  Strong<Node> f0, f1, f2, f3, f4, f5, f6, f7, f8, f9, f10, f11, f12, f13, f14, f15, f16, f17, f18,
      f19, f20, f21, f22, f23, f24, f25, f26, f27, f28, f29, f30, f31, f32;
};
static_assert(is_traced_v<Wide32>);
static_assert(!is_traced_v<Wide33>);

struct Node {
  Strong<Node> next;
};
static_assert(is_traced_v<Node>);

// A member whose element type is completed later: made before that, the
// element is taken to hold nothing (no hard error from the traits).
struct Later;
struct HoldsLater {
  std::vector<Later> items;
};
inline weakref::Strong<HoldsLater> make_holds_later() { return weakref::make<HoldsLater>(); }
struct Later {
  int v = 0;
};

int main() {
  // make<> of each compiles (and its trace function instantiates).
  auto a = weakref::make<Link>("a");
  auto b = weakref::make<Containers>();
  auto c = weakref::make<BitFields>();
  auto d = weakref::make<Immovable>();
  auto e = weakref::make<SelfRecursive>();
  auto f = weakref::make<Wide32>();
  auto g = weakref::make<ConstMember>();
  auto h = weakref::make<WithPath>();
  auto i = make_holds_later();
  return weakref::gc::is_tracked(a) && weakref::gc::is_tracked(b) ? 0 : 1;
}
