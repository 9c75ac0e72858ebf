// A consumer of the weakref library (tests/consumer/run.sh builds it against
// an installed tree, as a subdirectory, through FetchContent and through
// pkg-config). Exits non-zero, saying what went wrong, if the library does
// not behave.
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <weakref/weakref.hpp>

namespace {

int failures = 0;

void check(bool ok, const char* what) {
  if (!ok) {
    std::cerr << "consumer: FAILED: " << what << '\n';
    ++failures;
  }
}

struct Node {
  std::string name;
  weakref::Strong<Node> next;
  explicit Node(std::string n) : name(std::move(n)) {}
  std::string greet(const std::string& who) const { return name + " greets " + who; }
  void trace(weakref::gc::Visitor& v) { v(next); }
};

}  // namespace

int main() {
  std::vector<std::string> events;

  // make / ref with a callback / finalize: both run when the object dies,
  // newest first.
  auto a = weakref::make<Node>("a");
  weakref::ref<Node> r(a, [&](weakref::ref<Node> dead) {
    events.push_back(dead() ? "callback saw a live object" : "callback");
  });
  weakref::finalize f(a, [&] { events.push_back("finalizer"); });
  check(r() == a, "r() is the object while it lives");
  check(f.alive(), "the finalizer is alive");
  a.reset();
  check(!r() && r.expired(), "r() is null once the object died");
  check(!f.alive(), "the finalizer ran");
  check(events == std::vector<std::string>{"finalizer", "callback"},
        "finalizer then callback, newest first");

  // proxy: forwards while alive, ReferenceError afterwards.
  auto b = weakref::make<Node>("b");
  weakref::proxy<Node> p(b);
  check(p->name == "b", "the proxy forwards to the object");
  b.reset();
  bool threw = false;
  try {
    (void)p->name;
  } catch (const weakref::ReferenceError&) {
    threw = true;
  }
  check(threw, "a dead proxy throws ReferenceError");

  // WeakMethod: calls while alive, nothing afterwards.
  auto c = weakref::make<Node>("c");
  weakref::WeakMethod greet(c, &Node::greet);
  auto said = greet(std::string("you"));
  check(said && *said == "c greets you", "the WeakMethod calls the method");
  c.reset();
  check(!greet(std::string("you")), "a dead WeakMethod calls nothing");

  // gc::collect: a cycle lives until collected.
  auto x = weakref::make<Node>("x");
  auto y = weakref::make<Node>("y");
  x->next = y;
  y->next = x;
  weakref::ref<Node> rx(x);
  x.reset();
  y.reset();
  check(rx() != nullptr, "a cycle outlives its last outside reference");
  std::size_t found = weakref::gc::collect();
  check(found >= 2, "gc::collect() finds the cycle");
  check(rx() == nullptr, "gc::collect() frees the cycle");

  // The weak containers: entries go with their objects.
  weakref::WeakValueDictionary<std::string, Node> cache;
  weakref::WeakKeyDictionary<Node, int> sizes;
  weakref::WeakSet<Node> seen;
  auto d = weakref::make<Node>("d");
  cache["d"] = d;
  sizes[d] = 4;
  seen.add(d);
  check(cache.valuerefs().size() == 1 && sizes.keyrefs().size() == 1 && seen.contains(d),
        "the weak containers hold d while it lives");
  d.reset();
  check(cache.empty() && sizes.empty() && seen.empty(), "d's entries went with it");

#ifdef CONSUMER_EXPECTED_VERSION
  check(std::strcmp(weakref::version, CONSUMER_EXPECTED_VERSION) == 0,
        "the installed headers have the package's version");
#endif

  if (failures) return 1;
  std::cout << "consumer: ok (weakref " << weakref::version << ")\n";
  return 0;
}
