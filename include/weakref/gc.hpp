// weakref::gc: CPython's cycle collector (the gc module) for managed objects.
//
// Opting in: a type is tracked by the collector when it says what it refers
// to, with a member `void trace(weakref::gc::Visitor& v)` (or a free function
// `trace(T&, weakref::gc::Visitor&)` found by ADL) that visits its Strong<>
// members and also its ref<> / proxy<> / WeakMethod members:
//
//     struct Node {
//       std::vector<weakref::Strong<Node>> children;
//       weakref::ref<Node> parent;
//       void trace(weakref::gc::Visitor& v) { v(children, parent); }
//     };
//
// The visitor understands Strong<>, the weak handles, optional, pair, tuple,
// variant (v(var) visits the alternative it holds), unique_ptr, every range
// (vector, map, set, array, ...) of those, members that have their own
// trace(), types with a trace_traits specialization, and plain aggregates
// (below). The same function is used to find references and to break
// garbage cycles (the collector empties the visited members of garbage, as
// CPython's tp_clear), so it must visit, not copy, and do nothing else.
//
// Traced without trace(): a plain struct needs none. A type without a
// trace() function whose fields hold anything above is traced
// automatically, its fields found by aggregate reflection (Boost.PFR's
// method; detail/reflect.hpp):
//
//     struct Link { std::string name; weakref::Strong<Link> next; };  // traced
//
// The rule: an aggregate (no user-declared constructor, all fields public,
// no virtual functions) that is not a union, has no base class, at most 32
// fields, none of them a C array (use std::array), a union or a reference,
// and fields that can all be initialized from `{}`; nested aggregates are
// followed. Anything else (a class with constructors or private members, a
// struct with a base class, ...) is traced only through its own trace(); a
// type with a trace() keeps it. A traced object carries the collector's
// 16-byte link (so such a struct's make<> block grows by 16 bytes) and is
// collected like any other. Opt a type out with
// `template <> inline constexpr bool weakref::gc::auto_trace<T> = false;`.
// is_traced_v<T> says whether make<T>() objects are traced:
// `static_assert(weakref::gc::is_traced_v<Node>)` next to a class with
// Strong<> members catches a forgotten trace() at compile time, and
// gc::find_untraced_holders() (forensics.hpp) finds, at run time, the
// untraced types whose objects hold strong references.
//
// Heaps and threads
//  * Every thread has its own heap: a traced object belongs to the heap of
//    the thread that made it, collect() collects the calling thread's heap
//    (a full collection also collects the objects of exited threads), and
//    references from outside the heap count as outside references (roots).
//  * A SharedHeap (shared_heap.hpp) is a heap no thread owns, for graphs
//    several threads edit: objects made while holding its lock go into it,
//    and any thread collects it. gc::adopt / gc::disown (there too) move
//    objects between heaps.
//  * Rule: an object's traced members may be written only by its heap's
//    thread, or for a SharedHeap's object by a thread holding its lock
//    (while the object is reachable by other threads, they may read
//    them). Strong references to any object may be copied and dropped, and
//    weak references locked, on any thread at any time, also during a
//    collection: the collector freezes the objects it found unreachable and
//    re-checks them after the freeze, so an object that another thread
//    reached through a weakref is never broken up (see src/gc/verify.cpp).
//  * Callbacks and finalizers run on the collecting thread. They may
//    allocate, drop objects, make weakrefs and call collect() (which then
//    does nothing and returns 0).
//
// Semantics are CPython 3.11's gc module; the differences are listed in
// docs/python-mapping.md.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <map>
#include <memory>
#include <optional>
#include <ranges>
#include <string>
#include <string_view>
#include <tuple>
#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "detail/type_traits.hpp"
#include "ref.hpp"
#include "strong.hpp"

namespace weakref::gc {

class Visitor;

/// Customization point: specialize with `static void trace(X&, Visitor&)` for
/// a type you cannot give a trace() member (the weak containers do). It must
/// visit, not copy, and do nothing else (it also breaks garbage up).
template <class X>
struct trace_traits;

/// Whether objects made by make<T>() are tracked by the collector (Python's
/// gc.is_tracked for every object of the type): T has a trace() member or
/// free function, or is traced automatically (the header comment of gc.hpp).
/// `static_assert(is_traced_v<Node>)` catches a forgotten trace().
template <class T>
inline constexpr bool is_traced_v = weakref::detail::Traceable<T>;

namespace detail {
using weakref::detail::ObjectHeader;
using weakref::detail::WeakObject;

using weakref::detail::has_trace_traits;
using weakref::detail::is_optional;
using weakref::detail::is_pairlike;
using weakref::detail::is_unique_ptr;
using weakref::detail::is_variant;
template <class X>
struct is_shared_ptr : std::false_type {};
template <class X>
struct is_shared_ptr<std::shared_ptr<X>> : std::true_type {};

// Whether X holds anything the collector must see (detail/reflect.hpp).
template <class X>
constexpr bool visitable() {
  return weakref::detail::visitable<X>();
}
}  // namespace detail

/// What a trace() function is given: it visits the references an object
/// holds (Python's tp_traverse, and tp_clear when clearing()). Made only by
/// the collector and the gc module's queries; not copyable.
class Visitor {
 public:
  Visitor(const Visitor&) = delete;
  Visitor& operator=(const Visitor&) = delete;

  /// `v(members...)`: visits each argument: Strong<>, the weak handles,
  /// optional, pair, tuple, variant, unique_ptr, ranges of those, types with
  /// a trace() or a trace_traits specialization, and plain aggregates (the
  /// header comment of gc.hpp). A raw pointer or a std::shared_ptr fails to
  /// compile, with a message saying why. Arguments must be the object's own
  /// members (the collector empties them while clearing).
  template <class... X>
  void operator()(X&... xs) {
    (visit_one(xs), ...);
  }

  /// True while the collector breaks a garbage object up (Python's
  /// tp_clear): visited Strong<> and weak members are emptied, containers are
  /// moved out and cleared.
  bool clearing() const noexcept { return ops_->clearing; }

  /// Low level, for trace_traits specializations: visits the strong
  /// reference to the object of header h held in `slot`. `take` (may be null
  /// for a const slot) empties the slot and hands its reference to the
  /// collector.
  void strong_slot(weakref::detail::ObjectHeader* h, void* slot,
                   weakref::detail::ObjectHeader* (*take)(void*)) {
    if (h) ops_->strong(*this, h, slot, take);
  }
  /// Low level, for trace_traits specializations: visits the weakref object
  /// w held in `slot` (a weak member), as strong_slot().
  void weak_slot(weakref::detail::WeakObject* w, void* slot,
                 weakref::detail::WeakObject* (*take)(void*)) {
    if (w) ops_->weak(*this, w, slot, take);
  }
  /// Clearing mode: destroys `value` (a container moved out of the object
  /// being broken up) now, while the collector holds that object alive, so
  /// that the object stays intact during its own trace even if what the
  /// value held dies. Allocates nothing (a collection never needs memory).
  template <class X>
  void keep_until_done(X&& value) {
    hold_current();
    [[maybe_unused]] std::remove_cvref_t<X> dying(std::forward<X>(value));
  }

  /// An ephemeron (a WeakKeyDictionary entry): `value` refers to what it
  /// holds only while its key (the object of side table `key`, which the
  /// entry's weakref keeps readable) is alive on other grounds. Visits
  /// value's members; the collector decides how (src/gc/collect.cpp, "Ephemerons").
  /// The value must be visited mutable: the collector empties the references
  /// of a value whose key it finds garbage. Used by the weak containers'
  /// trace(); user code has no reason to call it.
  template <class X>
  void ephemeron(weakref::detail::SideTable* key, X& value) {
    const Ops* saved = ops_;
    if (ops_->ephemeron) ops_ = ops_->ephemeron(*this, key);
    visit_member(value);
    ops_ = saved;
  }

  struct Kept {
    virtual ~Kept() = default;
  };
  struct Ops {
    void (*strong)(Visitor&, weakref::detail::ObjectHeader*, void* slot,
                   weakref::detail::ObjectHeader* (*take)(void*));
    void (*weak)(Visitor&, weakref::detail::WeakObject*, void* slot,
                 weakref::detail::WeakObject* (*take)(void*));
    // Clearing mode, called with null: hold the object being cleared alive
    // until its trace returns, and release what is taken from now on at once.
    void (*keep)(Visitor&, std::unique_ptr<Kept>);
    bool clearing;
    // Null, or: the operations that visit the value of an ephemeron with
    // this key (see ephemeron()).
    const Ops* (*ephemeron)(Visitor&, weakref::detail::SideTable* key);
  };

 protected:
  /// For the collector's visitors: `ops` says what visiting does.
  explicit Visitor(const Ops* ops) noexcept : ops_(ops) {}
  ~Visitor() = default;

 private:
  template <class T>
  static weakref::detail::ObjectHeader* take_strong(void* slot) noexcept {
    return weakref::detail::StrongAccess::release(*static_cast<Strong<T>*>(slot));
  }
  template <class H>
  static weakref::detail::WeakObject* take_weak(void* slot) noexcept {
    return weakref::detail::HandleAccess::take(*static_cast<H*>(slot));
  }

  template <class X>
  void visit_one(X& x) {
    using U = std::remove_cv_t<X>;
    constexpr bool is_const = std::is_const_v<X>;
    if constexpr (weakref::detail::is_strong<U>::value) {
      using T = typename U::element_type;
      strong_slot(weakref::detail::StrongAccess::header(x), const_cast<U*>(&x),
                  is_const ? nullptr : &take_strong<T>);
    } else if constexpr (weakref::detail::weak_handle_type<U>) {
      weak_slot(weakref::detail::HandleAccess::get(x), const_cast<U*>(&x),
                is_const ? nullptr : &take_weak<U>);
    } else if constexpr (detail::has_trace_traits<U>) {
      trace_traits<U>::trace(const_cast<U&>(x), *this);
    } else if constexpr (weakref::detail::HasMemberTrace<U>) {
      const_cast<U&>(x).trace(*this);
    } else if constexpr (weakref::detail::HasFreeTrace<U>) {
      trace(const_cast<U&>(x), *this);
    } else if constexpr (detail::is_optional<U>::value) {
      if (x) visit_one(*x);
    } else if constexpr (detail::is_unique_ptr<U>::value) {
      if (x) visit_one(*x);
    } else if constexpr (detail::is_pairlike<U>::value) {
      std::apply([this](auto&... e) { (this->visit_member(e), ...); }, x);
    } else if constexpr (detail::is_variant<U>::value) {
      std::visit([this](auto& e) { this->visit_member(e); }, x);
    } else if constexpr (detail::is_shared_ptr<U>::value) {
      static_assert(weakref::detail::dependent_false<X>,
                    "weakref::gc::Visitor: a std::shared_ptr's object may be shared with "
                    "untraced owners, so the collector cannot count it; hold managed objects "
                    "in weakref::Strong<> instead");
    } else if constexpr (std::is_pointer_v<U>) {
      static_assert(weakref::detail::dependent_false<X>,
                    "weakref::gc::Visitor: raw pointers are not references; use "
                    "weakref::Strong<> or a weak handle");
    } else if constexpr (std::ranges::range<U>) {
      static_assert(detail::visitable<U>(),
                    "weakref::gc::Visitor: this range holds nothing the collector can see");
      // Clearing mode empties the range without allocating: moved out (the
      // object keeps an empty range, whatever its elements' destructors
      // look at) and destroyed, or cleared in place when moving could
      // allocate (a libstdc++ deque's default constructor does).
      if constexpr (!is_const && std::is_nothrow_default_constructible_v<U> &&
                    std::is_nothrow_move_assignable_v<U> &&
                    std::is_nothrow_move_constructible_v<U>) {
        if (clearing()) {
          keep_until_done(std::exchange(x, U{}));
          return;
        }
      } else if constexpr (!is_const && requires { x.clear(); }) {
        if (clearing()) {
          hold_current();
          x.clear();
          return;
        }
      } else if constexpr (!is_const && std::is_default_constructible_v<U> &&
                           std::is_move_assignable_v<U> && std::is_move_constructible_v<U>) {
        if (clearing()) {
          keep_until_done(std::exchange(x, U{}));
          return;
        }
      }
      for (auto& e : x) visit_member(e);
    } else if constexpr (weakref::detail::reflectable<U>) {
      // A plain aggregate: its fields that hold something (the others may
      // be anything, bit-fields included).
      weakref::detail::for_visitable_fields(x, [this](auto& field) { this->visit_one(field); });
    } else {
      static_assert(weakref::detail::dependent_false<X>,
                    "weakref::gc::Visitor: cannot trace this type; give it a member "
                    "`void trace(weakref::gc::Visitor&)` or specialize "
                    "weakref::gc::trace_traits");
    }
  }
  void hold_current() { ops_->keep(*this, nullptr); }

  // Members of aggregates that hold nothing traceable (a map's string key,
  // say) are skipped.
  template <class X>
  void visit_member(X& x) {
    if constexpr (detail::visitable<X>()) visit_one(x);
  }

  const Ops* ops_;
};

// ---------------------------------------------------------------------------
// The gc module.

inline constexpr int DEBUG_STATS = 1;        ///< gc.DEBUG_STATS: print statistics
inline constexpr int DEBUG_COLLECTABLE = 2;  ///< gc.DEBUG_COLLECTABLE: print collectable objects
inline constexpr int DEBUG_UNCOLLECTABLE =
    4;                                    ///< gc.DEBUG_UNCOLLECTABLE: print uncollectable objects
inline constexpr int DEBUG_SAVEALL = 32;  ///< gc.DEBUG_SAVEALL: keep garbage in garbage()
/// gc.DEBUG_LEAK: DEBUG_COLLECTABLE | DEBUG_UNCOLLECTABLE | DEBUG_SAVEALL.
inline constexpr int DEBUG_LEAK = DEBUG_COLLECTABLE | DEBUG_UNCOLLECTABLE | DEBUG_SAVEALL;

/// Python's `gc.collect(generation)`: runs a collection of generations
/// 0..generation of the calling thread's heap (generation 2 also collects
/// the heap of exited threads), and of the SharedHeaps the calling thread
/// holds (shared_heap.hpp). Returns the number of unreachable objects
/// found. Throws std::invalid_argument ("invalid generation") unless 0 <=
/// generation <= 2. Returns 0 at once when a collection of this heap, or any
/// collection on this thread, is already running (called from a weakref
/// callback, a finalizer or a gc.callbacks callback of one). Never fails for
/// lack of memory (docs/design.md, "Guarantees under attack"). Callbacks and
/// finalizers of the garbage run on the calling thread; their exceptions go
/// to the unraisable hook.
WEAKREF_API std::size_t collect(int generation = 2);

/// Python's `gc.enable()`: turns automatic collection on (the default;
/// process-wide).
WEAKREF_API void enable() noexcept;
/// Python's `gc.disable()`: turns automatic collection off (process-wide;
/// collect() still works).
WEAKREF_API void disable() noexcept;
/// Python's `gc.isenabled()`.
WEAKREF_API bool isenabled() noexcept;

/// Python's `gc.get_count()`, for the calling thread's heap: allocations
/// minus deallocations since the last collection of generation 0, and
/// collections of the younger generation.
WEAKREF_API std::array<long, 3> get_count() noexcept;
/// Python's `gc.get_threshold()` (process-wide).
WEAKREF_API std::array<long, 3> get_threshold() noexcept;
/// Python's `gc.set_threshold(threshold0[, threshold1[, threshold2]])`
/// (process-wide); 0 for threshold0 turns automatic collection off, as in
/// CPython.
///@{
WEAKREF_API void set_threshold(long threshold0) noexcept;
WEAKREF_API void set_threshold(long threshold0, long threshold1) noexcept;
WEAKREF_API void set_threshold(long threshold0, long threshold1, long threshold2) noexcept;
///@}

/// Python's `gc.set_debug(flags)`: the DEBUG_* flags (process-wide; the
/// messages go to stderr).
WEAKREF_API void set_debug(int flags) noexcept;
/// Python's `gc.get_debug()`.
WEAKREF_API int get_debug() noexcept;

/// Python's `gc.get_objects(generation=None)`: every tracked object of every
/// heap (or of one generation), as strong references. Objects inside a
/// running collection are not listed. Throws std::invalid_argument for a
/// generation outside 0..2, std::bad_alloc.
WEAKREF_API std::vector<Strong<void>> get_objects(std::optional<int> generation = std::nullopt);
/// A generation is an integer (Python raises TypeError for get_objects(1.5)):
/// this overload is deleted.
template <class F>
requires std::is_floating_point_v<F> std::vector<Strong<void>> get_objects(F)
= delete;

namespace detail {
WEAKREF_API std::vector<Strong<void>> referrers(std::vector<ObjectHeader*> targets);
WEAKREF_API std::vector<Strong<void>> referents(std::vector<ObjectHeader*> objects);
WEAKREF_API bool is_tracked(ObjectHeader* h) noexcept;
WEAKREF_API bool is_finalized(ObjectHeader* h) noexcept;
template <class... T>
std::vector<ObjectHeader*> headers(const Strong<T>&... objs) {
  std::vector<ObjectHeader*> v;
  (v.push_back(weakref::detail::StrongAccess::header(objs)), ...);
  std::erase(v, nullptr);
  return v;
}
}  // namespace detail

/// Python's `gc.get_referrers(*objs)`: the tracked objects (of the calling
/// thread's heap, of exited threads, and of the SharedHeaps the calling
/// thread holds) that refer to any of objs (strong or
/// weak members). Reading another thread's objects is not attempted: their
/// members may be changing. Throws std::bad_alloc.
///@{
template <class... T>
std::vector<Strong<void>> get_referrers(const Strong<T>&... objs) {
  return detail::referrers(detail::headers(objs...));
}
template <class T>
std::vector<Strong<void>> get_referrers(const std::vector<Strong<T>>& objs) {
  std::vector<detail::ObjectHeader*> v;
  for (const auto& o : objs)
    if (auto* h = weakref::detail::StrongAccess::header(o)) v.push_back(h);
  return detail::referrers(std::move(v));
}
///@}

/// Python's `gc.get_referents(*objs)`: the objects that objs refer to
/// strongly (what their trace() visits). Throws std::bad_alloc.
template <class... T>
std::vector<Strong<void>> get_referents(const Strong<T>&... objs) {
  return detail::referents(detail::headers(objs...));
}

/// Python's `gc.is_tracked(obj)`: whether obj is listed in a collector heap
/// (false for a null Strong and for untraced types).
template <class T>
bool is_tracked(const Strong<T>& obj) noexcept {
  auto* h = weakref::detail::StrongAccess::header(obj);
  return h && detail::is_tracked(h);
}
/// Whether the object's tp_finalize has run (Python's `gc.is_finalized`).
template <class T>
bool is_finalized(const Strong<T>& obj) noexcept {
  auto* h = weakref::detail::StrongAccess::header(obj);
  return h && detail::is_finalized(h);
}

/// Python's `gc.freeze()`: moves every tracked object of the calling
/// thread's heap to the permanent generation, which collections ignore.
WEAKREF_API void freeze() noexcept;
/// Python's `gc.unfreeze()`: moves the calling thread's permanent
/// generation back, to the oldest generation.
WEAKREF_API void unfreeze() noexcept;
/// Python's `gc.get_freeze_count()`: objects in the calling thread's
/// permanent generation.
WEAKREF_API std::size_t get_freeze_count() noexcept;

/// Python's `gc.garbage`: the objects kept by DEBUG_SAVEALL (a copy of the
/// process-wide list). Throws std::bad_alloc.
WEAKREF_API std::vector<Strong<void>> garbage();
/// Python's `del gc.garbage[:]`: empties the list (its objects are released
/// on the calling thread, with no lock held).
WEAKREF_API void clear_garbage();

/// The `phase` argument of a gc.callbacks callback: before ("start") and
/// after ("stop") every collection.
enum class Phase {
  start,  ///< "start": a collection begins
  stop    ///< "stop": it has ended
};
/// "start" or "stop", as Python passes the phase.
WEAKREF_API std::string_view to_string(Phase p) noexcept;
/// The `info` argument of a gc.callbacks callback.
struct CallbackInfo {
  int generation;             ///< the oldest generation collected
  std::size_t collected;      ///< objects collected ("stop" only)
  std::size_t uncollectable;  ///< objects found uncollectable ("stop" only)
};
/// A gc.callbacks callback: called before ("start") and after ("stop")
/// every collection, on the collecting thread; its exceptions go to the
/// unraisable hook.
using Callback = std::function<void(Phase, const CallbackInfo&)>;
/// What add_callback() returns, for remove_callback().
using CallbackId = std::uint64_t;
/// Python's `gc.callbacks.append(cb)` (process-wide; thread-safe). Throws
/// std::bad_alloc.
WEAKREF_API CallbackId add_callback(Callback cb);
/// Python's `gc.callbacks.remove(cb)`: false when id is not registered.
WEAKREF_API bool remove_callback(CallbackId id);
/// Python's `gc.callbacks.clear()`.
WEAKREF_API void clear_callbacks();

/// One generation's entry of get_stats() (Python's dict of the same keys).
struct GenerationStats {
  std::uint64_t collections;    ///< collections of this generation
  std::uint64_t collected;      ///< objects collected by them
  std::uint64_t uncollectable;  ///< objects found uncollectable by them
};
/// Python's `gc.get_stats()`: per generation, summed over every heap.
WEAKREF_API std::array<GenerationStats, 3> get_stats() noexcept;

}  // namespace weakref::gc
