// Leak forensics: what is alive and why (what objgraph gives Python users),
// for the objects the collector tracks, and the untraced types that hold
// strong references (find_untraced_holders, below).
//
//     weakref::gc::show_most_common_types();          // Node 1200, Edge 800 ...
//     weakref::gc::show_growth();                     // what grew since last time
//     auto chain = weakref::gc::find_backref_chain(leaked);  // root -> ... -> leaked
//     weakref::gc::write_dot("leak.dot", leaked, {.backrefs = true});  // dot -Tpng
//
// Rules
//  * Counts and listings cover every heap (every thread's objects).
//  * Following references reads traced members, so find_backref_chain and
//    write_dot look only at the calling thread's heap and the objects of
//    exited threads (another thread's objects may be changing under it), and
//    the objects given must belong to those heaps for backward searches.
//  * A "root" is an object referenced from outside the traced graph: its
//    strong count is larger than the number of references to it from traced
//    objects (a local, a global, an untraced object or another thread holds
//    it). The handle you pass to a query is such a reference, so the object
//    a query is about is never reported as a root of itself.
//  * Nothing here keeps objects alive after it returns, except the Strong
//    references in the returned vectors.
#pragma once

#include <cstddef>
#include <functional>
#include <iosfwd>
#include <iostream>
#include <string>
#include <vector>

#include "gc.hpp"
#include "strong.hpp"

namespace weakref::gc {

/// One row of most_common_types().
struct TypeCount {
  std::string type;   ///< demangled dynamic type name
  std::size_t count;  ///< tracked objects of it
};

/// objgraph's `most_common_types(limit)`: tracked objects (of every heap) by
/// type, most common first (ties by name). Throws std::bad_alloc.
WEAKREF_API std::vector<TypeCount> most_common_types(std::size_t limit = 10);
/// objgraph's `show_most_common_types(limit)`: prints most_common_types()
/// to `out`, one "Type count" line each.
WEAKREF_API void show_most_common_types(std::size_t limit = 10, std::ostream& out = std::cout);

/// One row of growth().
struct TypeGrowth {
  std::string type;   ///< demangled dynamic type name
  std::size_t count;  ///< tracked objects of it now
  std::size_t delta;  ///< increase over the highest count seen by earlier calls
};

/// objgraph's `growth(limit)`: the types whose count went above the highest
/// count seen by the previous calls (process-wide record), biggest increase
/// first. The first call reports every type. Thread-safe.
WEAKREF_API std::vector<TypeGrowth> growth(std::size_t limit = 10);
/// objgraph's `show_growth(limit)`: prints growth() as "Node   1200   +3".
WEAKREF_API void show_growth(std::size_t limit = 10, std::ostream& out = std::cout);

/// A test on an object, for find_backref_chain (objgraph's predicate).
using ObjectPredicate = std::function<bool(const Strong<void>&)>;

namespace detail {
WEAKREF_API std::vector<Strong<void>> backref_chain(weakref::detail::ObjectHeader* target,
                                                    const ObjectPredicate* is_root,
                                                    std::size_t max_depth);
WEAKREF_API bool is_root(weakref::detail::ObjectHeader* h);
}  // namespace detail

/// objgraph's `find_backref_chain(obj, predicate, max_depth)`: the shortest
/// chain of strong references [root, ..., obj] from an object for which
/// `predicate` holds to obj, or an empty vector when there is none within
/// max_depth steps (or obj is null). The default predicate is "a root other
/// than obj" (the rules at the top of forensics.hpp); a given predicate is
/// tried on obj too, as objgraph does. Searches the calling thread's heap and
/// the objects of exited threads only. Throws std::bad_alloc.
///@{
template <class T>
std::vector<Strong<void>> find_backref_chain(const Strong<T>& obj, ObjectPredicate predicate,
                                             std::size_t max_depth = 20) {
  auto* h = weakref::detail::StrongAccess::header(obj);
  if (!h) return {};
  return detail::backref_chain(h, &predicate, max_depth);
}
template <class T>
std::vector<Strong<void>> find_backref_chain(const Strong<T>& obj, std::size_t max_depth = 20) {
  auto* h = weakref::detail::StrongAccess::header(obj);
  if (!h) return {};
  return detail::backref_chain(h, nullptr, max_depth);
}
///@}

/// Whether obj is referenced from outside the traced graph (a root: the
/// rules at the top of forensics.hpp; here your handle `obj` counts, so pass
/// a handle that is not the only one). Throws std::bad_alloc.
template <class T>
bool is_root(const Strong<T>& obj) {
  auto* h = weakref::detail::StrongAccess::header(obj);
  return h && detail::is_root(h);
}

// ---------------------------------------------------------------------------
// Untraced types that hold strong references: a forgotten trace().
//
// The collector sees only traced types (gc.hpp: a trace() function, or a
// plain aggregate traced automatically). A class with Strong<> members and
// no trace() is invisible to it: cycles through its objects leak, and what
// they hold looks referenced from outside. To find such classes at run
// time:
//
//     weakref::gc::track_untraced(true);  // or WEAKREF_TRACK_UNTRACED=1
//     ... run the program ...
//     weakref::gc::show_untraced_holders();  // Holder  3 objects  5 references ...
//
// While tracking is on, make<T>() remembers the objects of untraced class
// types (they are forgotten at their death); find_untraced_holders() scans
// the bytes of each remembered live object for Strong<>s stored in it
// (directly, or in a std::optional, std::pair, std::array or struct member
// of it) that refer to a live managed object, which it knows by its exact
// header address and an object pointer inside it, so it reports no false
// positives. It does not see Strong<>s held in separately allocated
// storage (a std::vector's buffer, a std::map's nodes, a unique_ptr's
// object), nor objects made while tracking was off. Tracking costs a lock
// and a hash-set insertion per untraced object made and freed; off (the
// default), a load and a branch in make<T> (a remembered object carries a
// TypeInfo of its own whose destroy forgets it, so destroys check nothing).
// The scan reads other threads' objects:
// call it while no thread writes to them (it is a debugging tool).
/// Turns the remembering of untraced objects on or off (process-wide; also
/// on at start-up with the environment variable WEAKREF_TRACK_UNTRACED=1):
/// objects made by make<T>() while it is on are what find_untraced_holders()
/// scans (the comment above has the details). No Python equivalent.
WEAKREF_API void track_untraced(bool on) noexcept;

/// One row of find_untraced_holders(): an untraced type whose objects hold
/// strong references.
struct UntracedHolder {
  std::string type;                    ///< the holder's dynamic type (demangled)
  std::size_t objects;                 ///< live objects of it holding references
  std::size_t references;              ///< Strong<>s found in them
  std::vector<std::string> referents;  ///< the types they refer to (sorted, unique)
  Strong<void> example;                ///< one of the holders
};
/// The untraced types whose remembered objects hold strong references, most
/// references first (ties by name): the classes that are missing a trace().
/// Reads other threads' objects: call it while no thread writes to them.
/// Throws std::bad_alloc.
WEAKREF_API std::vector<UntracedHolder> find_untraced_holders();
/// Prints find_untraced_holders(): "Holder  objects 3  references 5  ->
/// Node, Leaf".
WEAKREF_API void show_untraced_holders(std::ostream& out = std::cout);

/// What write_dot() draws (objgraph's show_refs/show_backrefs arguments).
struct DotOptions {
  std::size_t max_depth = 3;    ///< steps from the object
  bool backrefs = false;        ///< follow referrers (objgraph.show_backrefs)
                                ///< instead of referents (show_refs)
  std::size_t max_nodes = 200;  ///< the graph stops growing there
  bool show_addresses = true;   ///< the object's address on its label
  /// objgraph's extra_info: an extra label line per object (empty: none),
  /// e.g. a name, so that a picture says which object is which. Called on
  /// the calling thread while the graph is written; must not change it.
  std::function<std::string(const Strong<void>&)> extra_info = {};
};

namespace detail {
WEAKREF_API void write_dot(std::ostream& os, weakref::detail::ObjectHeader* h,
                           const DotOptions& options);
WEAKREF_API void write_dot_file(const std::string& path, weakref::detail::ObjectHeader* h,
                                const DotOptions& options);
}  // namespace detail

/// objgraph's `show_refs` / `show_backrefs` (DotOptions::backrefs): writes
/// the reference graph around obj in Graphviz DOT: one node per object
/// (type, address, strong count, extra_info; roots drawn as boxes, obj
/// highlighted), strong references as solid arrows, weak references
/// (ref/proxy/WeakMethod members) as dashed arrows. Render with
/// `dot -Tpng file.dot -o file.png`. Follows the calling thread's heap and
/// the objects of exited threads only. Throws std::bad_alloc and what the
/// stream throws.
template <class T>
void write_dot(std::ostream& os, const Strong<T>& obj, const DotOptions& options = {}) {
  detail::write_dot(os, weakref::detail::StrongAccess::header(obj), options);
}
/// The same into the file `path` (created or truncated); throws
/// std::system_error when it cannot be written.
template <class T>
void write_dot(const std::string& path, const Strong<T>& obj, const DotOptions& options = {}) {
  detail::write_dot_file(path, weakref::detail::StrongAccess::header(obj), options);
}

}  // namespace weakref::gc
