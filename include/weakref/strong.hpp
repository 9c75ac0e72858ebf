// weakref::Strong<T> and weakref::make<T>(): the strong reference and the
// managed object it owns.
//
// Lifetime rules
//  * make<T>(args...) allocates one block (16-byte header + T, plus a 16-byte
//    collector link when T is traced: it has a trace() function, or it is a
//    plain struct holding references, traced automatically -- gc.hpp) and
//    returns the first strong reference. No base class is needed.
//  * The object dies when its last Strong goes, on the thread that released
//    it, in CPython's order: first T::tp_finalize() if T has one (PEP 442's
//    __del__, once per object; self(this) works in it, and a Strong it
//    stores somewhere resurrects the object), then every weak reference is
//    cleared and their callbacks run (newest first; finalizers are among
//    them), then ~T runs and the block is returned to the allocator -- even
//    while weak references to it live on (they point at a separate side
//    table made on the first weak reference).
//  * Chains of any length are released without deep recursion: past 50
//    nested deaths, deaths are queued and run iteratively (CPython's
//    "trashcan").
//  * Threads: as std::shared_ptr. Distinct Strong objects may be copied,
//    assigned and destroyed concurrently on any threads, even when they point
//    to the same object; one Strong object must not be written by one thread
//    while another thread accesses it.
//  * self(p) returns a new Strong to the object p points to (like
//    shared_from_this, without the base class). p must point to the complete
//    object, or T must be polymorphic. It works in T's constructor (make<T>
//    counts the object's first reference before it runs: see make) and in
//    tp_finalize; it returns null during the rest of the object's death
//    (callbacks, destructor), and must not be used on objects that were not
//    made by make<T>(). In a constructor, `this` is the object's address
//    only in the constructor of the type given to make<T> (and of a base at
//    offset 0): call self(this) there, not from a base class's constructor.
#pragma once

#include <compare>
#include <cstddef>
#include <functional>
#include <memory>
#include <ostream>
#include <type_traits>
#include <typeinfo>
#include <utility>

#include "detail/object.hpp"
#include "detail/thread_check.hpp"

namespace weakref {

template <class T>
class Strong;

namespace detail {
struct StrongAccess;
// is_strong<X>: detail/reflect.hpp.
}  // namespace detail

/// A strong (owning, counted) reference to an object made by make<T>(): what
/// a Python variable is. The object dies when its last Strong goes, on the
/// thread that released it (tp_finalize, weakref callbacks, then ~T).
///
/// Threads: as std::shared_ptr. Distinct Strong objects may be copied,
/// assigned and destroyed concurrently on any threads, even when they point
/// to the same object; one Strong object must not be written by one thread
/// while another thread accesses it. Equality and ordering are by object
/// identity (Python's `is`), whatever the static types; std::hash too.
/// @tparam T the object's type, a base of it, or `void` (any object: what
///           the gc module's functions return).
template <class T>
class Strong {
 public:
  using element_type = T;  ///< the type pointed to

  /// A null reference (Python's None).
  ///@{
  constexpr Strong() noexcept = default;
  constexpr Strong(std::nullptr_t) noexcept {}  // NOLINT: like shared_ptr
  ///@}

  /// Copies (one more strong reference to the same object) and moves (the
  /// source becomes null), also from a `Strong<U>` whose `U*` converts to
  /// `T*`.
  /// Never throw.
  ///@{
  Strong(const Strong& o) noexcept : ptr_(o.ptr_), hdr_(o.hdr_) {
    if (hdr_) detail::incref(hdr_);
  }
  Strong(Strong&& o) noexcept : ptr_(o.ptr_), hdr_(o.hdr_) {
    detail::note_member_write(&o);
    o.ptr_ = nullptr;
    o.hdr_ = 0;
  }
  template <class U>
  requires std::is_convertible_v<U*, T*> Strong(const Strong<U>& o)
  noexcept  // NOLINT: implicit upcast
      : ptr_(o.ptr_), hdr_(o.hdr_) {
    if (hdr_) detail::incref(hdr_);
  }
  template <class U>
  requires std::is_convertible_v<U*, T*> Strong(Strong<U>&& o)
  noexcept  // NOLINT: implicit upcast
      : ptr_(o.ptr_), hdr_(o.hdr_) {
    detail::note_member_write(&o);
    o.ptr_ = nullptr;
    o.hdr_ = 0;
  }
  ///@}
  /// Releases the reference; the last one runs the object's death on this
  /// thread (its callbacks' exceptions go to the unraisable hook: never
  /// throws).
  ~Strong() {
    if (hdr_) detail::decref(hdr_);
  }

  /// Assignments. The old object is released after the new one is installed,
  /// so callbacks run by that release already see the new value (as
  /// std::shared_ptr). Never throw.
  ///@{
  Strong& operator=(const Strong& o) noexcept {
    detail::note_member_write(this);
    Strong(o).exchange(*this);
    return *this;
  }
  Strong& operator=(Strong&& o) noexcept {
    detail::note_member_write(this);
    Strong(std::move(o)).exchange(*this);
    return *this;
  }
  template <class U>
  requires std::is_convertible_v<U*, T*> Strong& operator=(const Strong<U>& o) noexcept {
    detail::note_member_write(this);
    Strong(o).exchange(*this);
    return *this;
  }
  template <class U>
  requires std::is_convertible_v<U*, T*> Strong& operator=(Strong<U>&& o) noexcept {
    detail::note_member_write(this);
    Strong(std::move(o)).exchange(*this);
    return *this;
  }
  Strong& operator=(std::nullptr_t) noexcept {
    reset();
    return *this;
  }
  ///@}

  /// Releases the object (Python's `del x`); *this is already null when its
  /// death runs.
  void reset() noexcept {
    detail::note_member_write(this);
    Strong().exchange(*this);
  }
  /// Exchanges the two references (no count changes).
  void swap(Strong& o) noexcept {
    detail::note_member_write(this);
    detail::note_member_write(&o);
    exchange(o);
  }

  /// The pointer held (null for a null Strong).
  T* get() const noexcept { return ptr_; }
  /// The object. Precondition: not null.
  template <class U = T>
  requires(!std::is_void_v<U>) U& operator*() const noexcept { return *ptr_; }
  /// Member access. Precondition: not null.
  T* operator->() const noexcept { return ptr_; }
  /// Whether it is not null (Python's `x is not None`).
  explicit operator bool() const noexcept { return ptr_ != nullptr; }

  /// Number of strong references (Python's `sys.getrefcount(x) - 1`, without
  /// the call's own reference); 0 for a null Strong. A snapshot when other
  /// threads hold references.
  long use_count() const noexcept {
    return hdr_ ? static_cast<long>(detail::use_count(detail::header_of(hdr_))) : 0;
  }

  /// A std::shared_ptr that keeps the object alive (interop with APIs that
  /// take shared_ptr). Each conversion allocates one control block (throws
  /// std::bad_alloc); null for a null Strong.
  template <class U>
  requires std::is_convertible_v<T*, U*>
  operator std::shared_ptr<U>() const {  // NOLINT: implicit by design
    return to_shared<U>();
  }
  /// The same conversion, named.
  template <class U = T>
  std::shared_ptr<U> to_shared() const {
    if (!hdr_) return {};
    return std::shared_ptr<U>(ptr_, [keep = *this](U*) mutable { keep.reset(); });
  }

  /// Identity: the same object (Python's `is`), whatever the static types.
  template <class U>
  bool operator==(const Strong<U>& b) const noexcept {
    return hdr_ == b.hdr_ || identity() == b.identity();
  }
  /// Whether it is null (Python's `x is None`).
  bool operator==(std::nullptr_t) const noexcept { return !hdr_; }
  /// Orders by object identity (the objects' addresses), for ordered
  /// containers.
  template <class U>
  std::strong_ordering operator<=>(const Strong<U>& b) const noexcept {
    return std::compare_three_way{}(identity(), b.identity());
  }

 private:
  template <class U>
  friend class Strong;
  friend struct detail::StrongAccess;

  Strong(T* p, detail::CountRef r) noexcept : ptr_(p), hdr_(r) {}  // adopts

  // swap() without the thread check (detail/thread_check.hpp): the
  // assignments check the handle they write, not their temporary.
  void exchange(Strong& o) noexcept {
    std::swap(ptr_, o.ptr_);
    std::swap(hdr_, o.hdr_);
  }

  const detail::ObjectHeader* identity() const noexcept {
    return hdr_ ? detail::header_of(hdr_) : nullptr;
  }

  T* ptr_ = nullptr;
  detail::CountRef hdr_ = 0;  // the object's header, or where its count is
                              // (detail::CountRef, object.hpp)
};

namespace detail {
struct StrongAccess {
  template <class T>
  static Strong<T> adopt(T* p, ObjectHeader* h) noexcept {
    return Strong<T>(p, count_ref(h));
  }
  // Adopts a unit of count taken on the side word of an object in side form
  // (the weak locks' result): the Strong's release stays on that word.
  template <class T>
  static Strong<T> adopt(T* p, SideTable* s) noexcept {
    return Strong<T>(p, count_ref(s));
  }
  template <class T>
  static ObjectHeader* header(const Strong<T>& s) noexcept {
    return s.hdr_ ? header_of(s.hdr_) : nullptr;
  }
  // Gives up ownership without releasing (for the collector's clearing);
  // the unit is then released through the header.
  template <class T>
  static ObjectHeader* release(Strong<T>& s) noexcept {
    ObjectHeader* h = header(s);
    s.ptr_ = nullptr;
    s.hdr_ = 0;
    return h;
  }
};

// The complete object's address, which the header precedes.
template <class T>
const void* complete_object(T* p) noexcept {
  if constexpr (std::is_polymorphic_v<T>)
    return p ? dynamic_cast<const void*>(p) : nullptr;
  else
    return static_cast<const void*>(p);
}
}  // namespace detail

// Creates a managed T (Python: calling the class): T(args...), or
// T{args...} for an aggregate without a matching constructor (so
// make<Point>(1, 2) works for a plain struct on every C++20 compiler, clang
// 14 included), and returns its first strong reference. For a traced T
// (gc.hpp) this is also where automatic collection may run.
//
// T's constructor runs with the object's first strong reference (the one
// make returns) already counted, so in it self(this) works and the object
// can register its own weak references and finalizers (Python's
// `self._finalizer = weakref.finalize(self, ...)` in __init__); other
// threads that reach it through them see a partly constructed object, as in
// Python.
//
// Throws std::bad_alloc, and what T's constructor throws. If the
// constructor throws, the exception propagates (nothing leaks) and what an
// object whose __init__ raised gets in CPython happens first, except what
// needs a constructed T: every weakref to it is cleared and their callbacks
// and finalizers run (newest first), but neither tp_finalize nor ~T runs (no
// T was made; the members it had constructed are destroyed by the
// exception, as for any C++ object). Strong references made by self(this)
// that the constructor stored outside the object survive the exception:
// they keep the block (and it stays weakly referenceable) until the last is
// released, which then runs the callbacks and frees it without ~T -- but
// there is no T in it: using them is undefined behaviour, as using any
// object whose constructor threw, so don't let them escape.
//
// Initializing an aggregate from fewer arguments than it has members is what
// make<T> is asked to do (the rest are default-initialized from their
// default member initializers or value-initialized), so -Wextra's
// missing-field-initializers is silenced for it.
#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#endif
namespace detail {
template <class T, class... Args>
inline constexpr bool make_uses_braces =
    std::is_aggregate_v<T> && !std::is_constructible_v<T, Args&&...>;
template <class T, class... Args>
constexpr bool make_is_nothrow() {
  if constexpr (make_uses_braces<T, Args...>)
    return noexcept(T{std::declval<Args>()...});
  else
    return std::is_nothrow_constructible_v<T, Args&&...>;
}
}  // namespace detail

/// make<T>(args...): creates a managed T (Python: calling the class) and
/// returns its first strong reference: T(args...), or T{args...} for an
/// aggregate without a matching constructor. A traced T (gc.hpp) may run an
/// automatic collection first. T's constructor runs with that reference
/// already counted (self(this), weakrefs and finalizers work in it). Throws
/// std::bad_alloc and what T's constructor throws; then the object's weakref
/// callbacks and finalizers have run, but not tp_finalize nor ~T (the
/// comment above has the details).
template <class T, class... Args>
inline Strong<T> make(Args&&... args) {
  static_assert(std::is_object_v<T> && !std::is_array_v<T> && !std::is_const_v<T>,
                "weakref::make<T>: T must be a non-const, non-array object type");
  using Info = detail::TypeInfoFor<T>;
  constexpr bool braces = detail::make_uses_braces<T, Args...>;
  constexpr bool nothrow = detail::make_is_nothrow<T, Args...>();
  if constexpr (detail::Traceable<T>) detail::gc_on_allocate();
  void* block = detail::allocate_block_of<T>();
  auto* obj = static_cast<char*>(block) + Info::value.offset;
  auto* h = detail::ObjectHeader::from_object(obj);
  ::new (static_cast<void*>(h))
      detail::ObjectHeader{{detail::HeaderWord::initial().raw()}, &Info::value};
  T* p;
  if constexpr (nothrow) {
    if constexpr (braces)
      p = ::new (static_cast<void*>(obj)) T{std::forward<Args>(args)...};
    else
      p = ::new (static_cast<void*>(obj)) T(std::forward<Args>(args)...);
  } else {
    try {
      if constexpr (braces)
        p = ::new (static_cast<void*>(obj)) T{std::forward<Args>(args)...};
      else
        p = ::new (static_cast<void*>(obj)) T(std::forward<Args>(args)...);
    } catch (...) {
      // No T: the block's last release must neither trace it, nor run
      // tp_finalize or ~T (TypeInfoFor::unconstructed). Usually that is
      // make's own reference, released here: the object's death (weakref
      // callbacks, finalizers) runs before the exception leaves make.
      h->type = &Info::unconstructed;
      detail::decref(h);
      throw;
    }
  }
  if constexpr (detail::Traceable<T>) {
    detail::track(h);
  } else {
    // Unless the constructor took references to the object (self(this),
    // weakrefs), write its count again, so that it is make's last store:
    // with the fields' stores after the word's, the drop's locked update of
    // the word is slower in a multi-threaded process (docs/performance.md,
    // "Objects and weak references"). Safe as track()'s store: only make
    // holds the object then.
    constexpr std::uint64_t initial = detail::HeaderWord::initial().raw();
    if (h->word.load(std::memory_order_relaxed) == initial)
      h->word.store(initial, std::memory_order_relaxed);
  }
  if constexpr (detail::remembered_when_untraced<T>) {
    // gc::track_untraced (forensics.hpp). The type is swapped here, after
    // the constructor, so that a throwing one needs no forgetting; only a
    // constructor that handed `this` to another thread lets that thread
    // see it (and the two TypeInfos differ only in destroy, which cannot
    // run while make holds its reference).
    if (detail::untraced_tracking.load(std::memory_order_relaxed)) [[unlikely]] {
      h->type = &Info::remembered;
      detail::remember_untraced(h);
    }
  }
  return detail::StrongAccess::adopt(p, h);
}
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

/// A new strong reference to the object `p` points into (like
/// shared_from_this, without a base class). Null when p is null or the
/// object is not alive (during its death's callbacks and destructor). p must
/// point to the complete object, or T must be polymorphic, and the object
/// must have been made by make<T>(). In a constructor, call it from the
/// constructor of the type given to make<T> (the rules at the top of
/// strong.hpp).
template <class T>
Strong<T> self(T* p) noexcept {
  const void* whole = detail::complete_object(p);
  if (!whole) return {};
  auto* h = detail::ObjectHeader::from_object(whole);
  if (!detail::incref_if_alive(h)) return {};
  return detail::StrongAccess::adopt(p, h);
}

/// std::static_pointer_cast for Strong: a new reference to the same object
/// as a T (unchecked: T must be the object's type or a base of it).
template <class T, class U>
Strong<T> static_pointer_cast(const Strong<U>& s) noexcept {
  auto* h = detail::StrongAccess::header(s);
  if (!h) return {};
  detail::incref(h);
  return detail::StrongAccess::adopt(static_cast<T*>(s.get()), h);
}
/// std::const_pointer_cast for Strong: a new reference with T's
/// cv-qualification.
template <class T, class U>
Strong<T> const_pointer_cast(const Strong<U>& s) noexcept {
  auto* h = detail::StrongAccess::header(s);
  if (!h) return {};
  detail::incref(h);
  return detail::StrongAccess::adopt(const_cast<T*>(s.get()), h);
}
namespace detail {
// The object of header h as a T*: when T is exactly its type (fast), or an
// unambiguous public base of it (its TypeInfo throws the object as its own
// type's pointer, which `catch (T*)` converts exactly as the language
// converts pointers: private, protected and ambiguous bases do not match).
// Null otherwise.
template <class T>
T* object_as(ObjectHeader* h) noexcept {
  if constexpr (std::is_void_v<T>) {
    return h->object();
  } else {
    if (*h->type->type == typeid(T)) return static_cast<T*>(h->object());
    try {
      h->type->throw_pointer(h->object());
    } catch (T* p) {
      return p;
    } catch (...) {
    }
    return nullptr;
  }
}
}  // namespace detail

/// Checked cast: the object as a T when it is one, else null (as
/// std::dynamic_pointer_cast; Python's isinstance test). From a polymorphic
/// U, dynamic_cast decides. From Strong<void> (what gc::garbage(),
/// get_objects(), get_referrers() and a ref<>'s lock give) or a
/// non-polymorphic U, the object's type as made by make<> decides: T must be
/// that type or an unambiguous public base of it (a handler-style
/// conversion; exact types take a fast path, a base costs an exception
/// throw, about a microsecond).
template <class T, class U>
Strong<T> dynamic_pointer_cast(const Strong<U>& s) noexcept {
  auto* h = detail::StrongAccess::header(s);
  if (!h) return {};
  T* p;
  if constexpr (std::is_convertible_v<U*, T*>)
    p = s.get();
  else if constexpr (std::is_polymorphic_v<U>)
    p = dynamic_cast<T*>(s.get());
  else
    p = detail::object_as<T>(h);
  if (!p) return {};
  detail::incref(h);
  return detail::StrongAccess::adopt(p, h);
}
/// Strong<void> (an object of any type) back to T when T is exactly the
/// type it was made as (Python's `type(x) is T`); null otherwise (also for a
/// base of it: see dynamic_pointer_cast).
template <class T>
Strong<T> exact_pointer_cast(const Strong<void>& s) noexcept {
  auto* h = detail::StrongAccess::header(s);
  if (!h || *h->type->type != typeid(T)) return {};
  detail::incref(h);
  return detail::StrongAccess::adopt(static_cast<T*>(h->object()), h);
}

/// The demangled dynamic type name of a managed object ("ns::Node"; Python's
/// `type(x).__qualname__` with its namespace); "NoneType" for a null Strong.
template <class T>
const char* type_name(const Strong<T>& s) noexcept {
  auto* h = detail::StrongAccess::header(s);
  return h ? detail::type_name(*h->type->type) : "NoneType";
}

/// Prints CPython's default repr of the object whose header is h: `<ns::Node
/// object at 0x...>`, or `None` for null. What operator<< of a Strong prints
/// for a type without an operator<< of its own.
WEAKREF_API std::ostream& write_object(std::ostream& os, const detail::ObjectHeader* h);

namespace detail {
// Whether X has an operator<< of its own (`os << x` compiles for a const X):
// then it is X's repr. The one trait for every place that prints a referent
// (Strong here, the weak containers' elements, keys and values).
template <class X>
concept streamable = requires(std::ostream& os, const X& x) {
  os << x;
};
}  // namespace detail

/// Python's print(obj) / repr(obj): the object printed with T's own
/// operator<< when T has one (chosen by the static type T, as any C++ call),
/// else CPython's default repr <ns::Node object at 0x...> (with the dynamic
/// type's name); None for a null Strong.
template <class T>
std::ostream& operator<<(std::ostream& os, const Strong<T>& s) {
  if constexpr (!std::is_void_v<T> && detail::streamable<T>) {
    if (s) return os << *s;
  }
  return write_object(os, detail::StrongAccess::header(s));
}

}  // namespace weakref

namespace std {
/// Hash of a Strong: by object identity (Python's default `__hash__`).
template <class T>
struct hash<weakref::Strong<T>> {
  /// The hash of s.
  std::size_t operator()(const weakref::Strong<T>& s) const noexcept {
    return std::hash<const void*>{}(weakref::detail::StrongAccess::header(s));
  }
};
}  // namespace std
