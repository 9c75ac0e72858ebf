// Leak forensics (include/weakref/forensics.hpp).
//
// Every query that follows references first takes a snapshot of the graph:
// under each heap's lock (the calling thread's heap and the orphan heap), it
// takes a strong reference to every live tracked object, traces it, and
// records its strong edges and the live referents of its weak members (a
// weak referent is locked, so it stays valid too). The snapshot's own
// references are discounted when telling roots apart. Everything is released
// when the query returns.
#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iomanip>
#include <map>
#include <mutex>
#include <ostream>
#include <set>
#include <sstream>
#include <system_error>
#include <unordered_map>
#include <unordered_set>

#include "heap.hpp"
#include "weakref/detail/locks.hpp"
#include "weakref/detail/weak_object.hpp"
#include "weakref/forensics.hpp"

// ---------------------------------------------------------------------------
// The untraced objects remembered for find_untraced_holders() (below).

namespace weakref::detail {

constinit std::atomic<bool> untraced_tracking{false};

namespace {
struct UntracedRegistry {
  std::mutex mu;
  std::unordered_set<ObjectHeader*> objects;
};
UntracedRegistry& untraced_registry() {
  static auto* r = new UntracedRegistry;  // never destroyed: deaths at exit use it
  return *r;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_untraced_registry_made = (untraced_registry(), true);

// WEAKREF_TRACK_UNTRACED=1 turns tracking on from the start (this file is
// linked wherever make<T> is used: untraced_tracking lives here).
[[maybe_unused]] const bool g_tracking_from_environment = [] {
  const char* env = std::getenv("WEAKREF_TRACK_UNTRACED");
  const bool on = env && *env && std::strcmp(env, "0") != 0;
  if (on) untraced_tracking.store(true, std::memory_order_relaxed);
  return on;
}();
}  // namespace

void remember_untraced(ObjectHeader* h) noexcept {
  UntracedRegistry& r = untraced_registry();
  try {
    std::lock_guard<std::mutex> g(r.mu);
    r.objects.insert(h);
  } catch (...) {
    // Out of memory: the object is not remembered, nothing else changes.
  }
}

void forget_untraced(ObjectHeader* h) noexcept {
  UntracedRegistry& r = untraced_registry();
  std::lock_guard<std::mutex> g(r.mu);
  r.objects.erase(h);
}

}  // namespace weakref::detail

namespace weakref::gc {

namespace wd = weakref::detail;
using wd::ObjectHeader;
using wd::WeakObject;

namespace {

std::string name_of(ObjectHeader* h) { return wd::type_name(*h->type->type); }

// The strong and weak edges of one object.
struct EdgeVisitor : Visitor {
  std::vector<ObjectHeader*> strong;
  std::vector<ObjectHeader*> weak;  // locked referents: +1 each, owned by the snapshot
  explicit EdgeVisitor(const Ops* ops) noexcept : Visitor(ops) {}
};
void edge_strong(Visitor& v, ObjectHeader* h, void*, ObjectHeader* (*)(void*)) {
  static_cast<EdgeVisitor&>(v).strong.push_back(h);
}
void edge_weak(Visitor& v, WeakObject* w, void*, WeakObject* (*)(void*)) {
  if (ObjectHeader* h = wd::weak_lock(w)) static_cast<EdgeVisitor&>(v).weak.push_back(h);
}
void edge_keep(Visitor&, std::unique_ptr<Visitor::Kept>) {}
const Visitor::Ops kEdgeOps{&edge_strong, &edge_weak, &edge_keep, false, nullptr};

struct Snapshot {
  std::vector<Strong<void>> held;  // keeps every object of the snapshot alive
  std::unordered_map<ObjectHeader*, std::vector<ObjectHeader*>> strong_out, weak_out, strong_in,
      weak_in;
  std::unordered_map<ObjectHeader*, std::size_t> internal;  // strong in-degree
  std::unordered_set<ObjectHeader*> scanned;

  Snapshot() {
    std::vector<wd::Heap*> heaps{wd::current_heap()};
    if (heaps[0] != wd::orphan_heap()) heaps.push_back(wd::orphan_heap());
    for (wd::Heap* heap : heaps) {
      std::lock_guard<wd::SpinLock> lk(heap->lock);
      for (wd::GcList* list : {&heap->gen[0], &heap->gen[1], &heap->gen[2], &heap->permanent})
        for (wd::GcHead* g = list->head.next; g != &list->head; g = g->next) {
          ObjectHeader* h = ObjectHeader::from_gc(g);
          if (!wd::incref_if_alive(h)) continue;  // dying
          held.push_back(wd::StrongAccess::adopt(h->object(), h));
          scanned.insert(h);
          EdgeVisitor v(&kEdgeOps);
          h->type->trace(h->object(), v);
          for (ObjectHeader* r : v.strong) {
            strong_out[h].push_back(r);
            strong_in[r].push_back(h);
            ++internal[r];
          }
          for (ObjectHeader* r : v.weak) {
            held.push_back(wd::StrongAccess::adopt(r->object(), r));
            weak_out[h].push_back(r);
            weak_in[r].push_back(h);
          }
        }
    }
  }

  // h's strong count without the snapshot's own references (one per
  // scanned object, one per weak edge to it).
  std::size_t count_without_snapshot(ObjectHeader* h) const {
    std::size_t own = scanned.count(h) ? 1 : 0;
    if (auto it = weak_in.find(h); it != weak_in.end()) own += it->second.size();
    return wd::use_count(h) - own;
  }
  // Strong references from outside the traced graph, `extra` of them not
  // counting (the query's argument).
  bool is_root(ObjectHeader* h, std::size_t extra) const {
    auto it = internal.find(h);
    const std::size_t inside = it == internal.end() ? 0 : it->second;
    return count_without_snapshot(h) > extra + inside;
  }

  static const std::vector<ObjectHeader*>& edges(
      const std::unordered_map<ObjectHeader*, std::vector<ObjectHeader*>>& m, ObjectHeader* h) {
    static const std::vector<ObjectHeader*> none;
    auto it = m.find(h);
    return it == m.end() ? none : it->second;
  }
};

Strong<void> strong_of(ObjectHeader* h) {
  wd::incref(h);
  return wd::StrongAccess::adopt(h->object(), h);
}

std::map<std::string, std::size_t> counts_by_type() {
  std::map<std::string, std::size_t> counts;
  for (const Strong<void>& o : get_objects()) ++counts[name_of(wd::StrongAccess::header(o))];
  return counts;
}

struct GrowthRecord {
  wd::Mutex mu;
  std::map<std::string, std::size_t> peak;
};
GrowthRecord& growth_record() {
  static auto* r = new GrowthRecord;
  return *r;
}
// Made at start-up, before any thread can be making it at a fork() (src/fork.cpp).
[[maybe_unused]] const bool g_growth_record_made = (growth_record(), true);

std::string dot_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  return out;
}

// A Strong<> is {T* ptr_, CountRef hdr_}: hdr_ is the object's header, or
// its side table tagged with bit 0 (a Strong made by a weak lock).
static_assert(sizeof(Strong<int>) == 2 * sizeof(void*));

struct KnownObject {
  ObjectHeader* header;
  const char* begin;  // the object's bytes: a Strong's T* points inside
  const char* end;
};

// What the untraced object h holds: the known objects that a Strong stored
// in its bytes refers to.
void strongs_in(ObjectHeader* h, const std::unordered_map<std::uintptr_t, KnownObject>& known,
                std::vector<ObjectHeader*>& out) {
  const char* bytes = static_cast<const char*>(h->object());
  const std::size_t size = h->type->size;
  constexpr std::size_t kWord = sizeof(std::uintptr_t);
  for (std::size_t k = 0; k + 2 * kWord <= size; k += kWord) {
    std::uintptr_t ptr, ref;
    std::memcpy(&ptr, bytes + k, kWord);
    std::memcpy(&ref, bytes + k + kWord, kWord);
    if (!ptr || !ref) continue;
    auto it = known.find(ref);
    if (it == known.end()) continue;
    const KnownObject& o = it->second;
    const char* p = reinterpret_cast<const char*>(ptr);
    if (p < o.begin || p >= o.end) continue;
    out.push_back(o.header);
    k += kWord;  // the pair is one Strong
  }
}

}  // namespace

void track_untraced(bool on) noexcept {
  wd::untraced_tracking.store(on, std::memory_order_relaxed);
}

std::vector<UntracedHolder> find_untraced_holders() {
  // The remembered objects that are alive, held while they are scanned.
  std::vector<Strong<void>> untraced;
  {
    wd::UntracedRegistry& r = wd::untraced_registry();
    std::lock_guard<std::mutex> g(r.mu);
    untraced.reserve(r.objects.size());
    for (ObjectHeader* h : r.objects)
      if (wd::incref_if_alive(h)) untraced.push_back(wd::StrongAccess::adopt(h->object(), h));
  }
  // Every object a Strong could refer to: those, and the traced ones.
  std::vector<Strong<void>> traced = get_objects();
  std::unordered_map<std::uintptr_t, KnownObject> known;
  for (const auto* list : {&untraced, &traced}) {
    for (const Strong<void>& s : *list) {
      ObjectHeader* h = wd::StrongAccess::header(s);
      const char* begin = static_cast<const char*>(h->object());
      const KnownObject o{h, begin, begin + (h->type->size ? h->type->size : 1)};
      known.emplace(reinterpret_cast<std::uintptr_t>(h), o);
      const wd::HeaderWord w{h->word.load(std::memory_order_acquire)};
      if (w.has_side())
        known.emplace(reinterpret_cast<std::uintptr_t>(w.side()) | wd::kCountAtSide, o);
    }
  }
  struct Acc {
    std::size_t objects = 0, references = 0;
    std::set<std::string> referents;
    Strong<void> example;
  };
  std::map<std::string, Acc> by_type;
  std::vector<ObjectHeader*> found;
  for (const Strong<void>& s : untraced) {
    ObjectHeader* h = wd::StrongAccess::header(s);
    found.clear();
    strongs_in(h, known, found);
    if (found.empty()) continue;
    Acc& a = by_type[name_of(h)];
    ++a.objects;
    a.references += found.size();
    for (ObjectHeader* r : found) a.referents.insert(name_of(r));
    if (!a.example) a.example = s;
  }
  std::vector<UntracedHolder> out;
  for (auto& [type, a] : by_type)
    out.push_back({type, a.objects, a.references,
                   std::vector<std::string>(a.referents.begin(), a.referents.end()),
                   std::move(a.example)});
  std::stable_sort(out.begin(), out.end(), [](const UntracedHolder& x, const UntracedHolder& y) {
    return x.references > y.references;
  });
  return out;
}

void show_untraced_holders(std::ostream& out) {
  const std::vector<UntracedHolder> holders = find_untraced_holders();
  std::size_t width = 0;
  for (const UntracedHolder& h : holders) width = std::max(width, h.type.size());
  for (const UntracedHolder& h : holders) {
    out << std::left << std::setw(static_cast<int>(width)) << h.type << "  objects " << h.objects
        << "  references " << h.references << "  ->";
    for (std::size_t i = 0; i < h.referents.size(); ++i) out << (i ? ", " : " ") << h.referents[i];
    out << '\n';
  }
}

std::vector<TypeCount> most_common_types(std::size_t limit) {
  std::vector<TypeCount> out;
  for (auto& [type, n] : counts_by_type()) out.push_back({type, n});
  std::stable_sort(out.begin(), out.end(),
                   [](const TypeCount& a, const TypeCount& b) { return a.count > b.count; });
  if (out.size() > limit) out.resize(limit);
  return out;
}

void show_most_common_types(std::size_t limit, std::ostream& out) {
  auto types = most_common_types(limit);
  std::size_t width = 0;
  for (auto& t : types) width = std::max(width, t.type.size());
  for (auto& t : types)
    out << std::left << std::setw(static_cast<int>(width) + 2) << t.type << t.count << '\n';
}

std::vector<TypeGrowth> growth(std::size_t limit) {
  auto counts = counts_by_type();
  std::vector<TypeGrowth> out;
  GrowthRecord& r = growth_record();
  {
    std::lock_guard<wd::Mutex> g(r.mu);
    for (auto& [type, n] : counts) {
      std::size_t& peak = r.peak[type];
      if (n > peak) {
        out.push_back({type, n, n - peak});
        peak = n;
      }
    }
  }
  std::stable_sort(out.begin(), out.end(),
                   [](const TypeGrowth& a, const TypeGrowth& b) { return a.delta > b.delta; });
  if (out.size() > limit) out.resize(limit);
  return out;
}

void show_growth(std::size_t limit, std::ostream& out) {
  auto g = growth(limit);
  std::size_t width = 0, count_width = 0;
  for (auto& t : g) {
    width = std::max(width, t.type.size());
    count_width = std::max(count_width, std::to_string(t.count).size());
  }
  for (auto& t : g)
    out << std::left << std::setw(static_cast<int>(width) + 2) << t.type << std::right
        << std::setw(static_cast<int>(count_width)) << t.count << "  +" << t.delta << '\n';
}

namespace detail {

bool is_root(ObjectHeader* h) {
  Snapshot s;
  return s.is_root(h, 0);
}

std::vector<Strong<void>> backref_chain(ObjectHeader* target, const ObjectPredicate* predicate,
                                        std::size_t max_depth) {
  Snapshot s;
  // With the default predicate the object itself is not a candidate: the
  // caller's own reference to it would make it a root.
  auto accept = [&](ObjectHeader* h) {
    if (predicate) return (*predicate)(strong_of(h));
    return h != target && s.is_root(h, 0);
  };
  // Breadth first over referrers, as objgraph does.
  std::unordered_map<ObjectHeader*, ObjectHeader*> parent{{target, nullptr}};
  std::unordered_map<ObjectHeader*, std::size_t> depth{{target, 0}};
  std::vector<ObjectHeader*> queue{target};
  for (std::size_t i = 0; i < queue.size(); ++i) {
    ObjectHeader* h = queue[i];
    if (accept(h)) {
      std::vector<Strong<void>> chain;
      for (ObjectHeader* p = h; p; p = parent[p]) chain.push_back(strong_of(p));
      return chain;  // root first: each element refers to the next
    }
    if (depth[h] >= max_depth) continue;
    for (ObjectHeader* src : Snapshot::edges(s.strong_in, h)) {
      if (parent.count(src)) continue;
      parent[src] = h;
      depth[src] = depth[h] + 1;
      queue.push_back(src);
    }
  }
  return {};
}

void write_dot(std::ostream& os, ObjectHeader* target, const DotOptions& options) {
  os << "digraph ObjectGraph {\n  node [shape=ellipse, fontname=\"monospace\"];\n";
  if (!target) {
    os << "}\n";
    return;
  }
  Snapshot s;
  std::unordered_map<ObjectHeader*, std::size_t> id;
  std::unordered_map<ObjectHeader*, std::size_t> depth;
  std::vector<ObjectHeader*> order{target};
  id[target] = 0;
  depth[target] = 0;
  struct Edge {
    ObjectHeader* from;
    ObjectHeader* to;
    bool weak;
  };
  std::vector<Edge> edges;
  auto visit = [&](ObjectHeader* from, ObjectHeader* to, bool weak, ObjectHeader* next,
                   std::size_t d) {
    if (!id.count(next)) {
      if (order.size() >= options.max_nodes) return;
      id[next] = order.size();
      depth[next] = d;
      order.push_back(next);
    }
    edges.push_back({from, to, weak});
  };
  for (std::size_t i = 0; i < order.size(); ++i) {
    ObjectHeader* h = order[i];
    const std::size_t d = depth[h];
    if (d >= options.max_depth) continue;
    if (options.backrefs) {
      for (ObjectHeader* src : Snapshot::edges(s.strong_in, h)) visit(src, h, false, src, d + 1);
      for (ObjectHeader* src : Snapshot::edges(s.weak_in, h)) visit(src, h, true, src, d + 1);
    } else {
      for (ObjectHeader* dst : Snapshot::edges(s.strong_out, h)) visit(h, dst, false, dst, d + 1);
      for (ObjectHeader* dst : Snapshot::edges(s.weak_out, h)) visit(h, dst, true, dst, d + 1);
    }
  }
  for (ObjectHeader* h : order) {
    std::ostringstream label;
    label << dot_escape(name_of(h));
    if (options.show_addresses) label << "\\n" << h->object();
    label << "\\nstrong " << s.count_without_snapshot(h);
    if (options.extra_info) {
      const std::string extra = options.extra_info(strong_of(h));
      if (!extra.empty()) label << "\\n" << dot_escape(extra);
    }
    const bool root = h != target && s.is_root(h, 0);
    os << "  n" << id[h] << " [label=\"" << label.str() << "\"";
    if (root) os << ", shape=box";
    if (h == target)
      os << ", style=filled, fillcolor=\"#ffd280\"";
    else if (root)
      os << ", style=filled, fillcolor=\"#c8e0ff\"";
    os << "];\n";
  }
  for (const Edge& e : edges) {
    if (!id.count(e.from) || !id.count(e.to)) continue;
    os << "  n" << id[e.from] << " -> n" << id[e.to];
    if (e.weak) os << " [style=dashed, label=\"weak\"]";
    os << ";\n";
  }
  os << "}\n";
}

void write_dot_file(const std::string& path, ObjectHeader* target, const DotOptions& options) {
  std::ofstream out(path, std::ios::out | std::ios::trunc);
  if (!out)
    throw std::system_error(errno, std::generic_category(), "write_dot: cannot open " + path);
  write_dot(out, target, options);
  out.flush();
  if (!out)
    throw std::system_error(errno, std::generic_category(), "write_dot: cannot write " + path);
}

}  // namespace detail

}  // namespace weakref::gc
