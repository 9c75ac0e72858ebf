// A resource manager that alone owns its resources and hands clients
// weakref::proxy objects: a client uses its proxy like the resource (p->),
// but cannot keep it alive. Once the manager releases a resource, every use
// of a proxy to it throws weakref::ReferenceError, with CPython's message. A
// proxy made with a callback tells its client when that happens.
#include <iostream>
#include <map>
#include <string>
#include <utility>
#include <weakref/weakref.hpp>

using weakref::Strong;

struct Resource {
  std::string name;
  int reads = 0;
  explicit Resource(std::string n) : name(std::move(n)) {}
  ~Resource() { std::cout << "    (closing " << name << ")\n"; }
  std::string read() { return name + " record #" + std::to_string(++reads); }
};

class ResourceManager {
 public:
  // A proxy to the resource, opened on first use. Basic proxies (no
  // callback) to one resource are one and the same weakref object.
  weakref::proxy<Resource> open(const std::string& name) { return {resource(name)}; }
  // A proxy whose callback runs when the resource goes (with the dead proxy).
  template <class F>
  weakref::proxy<Resource> open(const std::string& name, F&& on_release) {
    return {resource(name), std::forward<F>(on_release)};
  }
  void release(const std::string& name) { owned_.erase(name); }  // the only Strong goes
  std::size_t weakrefcount(const std::string& name) const {
    return weakref::getweakrefcount(owned_.at(name));
  }

 private:
  const Strong<Resource>& resource(const std::string& name) {
    auto [it, inserted] = owned_.try_emplace(name);
    if (inserted) it->second = weakref::make<Resource>(name);
    return it->second;
  }
  std::map<std::string, Strong<Resource>> owned_;
};

struct Client {
  std::string name;
  weakref::proxy<Resource> db;
  void work() const {
    try {
      const std::string record = db->read();  // db is kept alive for the call
      std::cout << "  " << name << " reads " << record << "\n";
    } catch (const weakref::ReferenceError& e) {
      std::cout << "  " << name << ": weakref::ReferenceError: " << e.what() << "\n";
    }
  }
};

int main() {
  ResourceManager manager;
  Client alice{"alice", manager.open("db")};
  Client bob{"bob", manager.open("db", [](const weakref::proxy<Resource>& dead) {
               std::cout << "  bob is told db was released; his proxy is now " << dead << "\n";
             })};
  Client carol{"carol", manager.open("db")};

  std::cout << "alice's proxy: " << alice.db << "\n";
  std::cout << "alice and carol share one weakref object: " << std::boolalpha
            << alice.db.is(carol.db) << "; bob's has a callback: " << bob.db.has_callback() << "\n";
  std::cout << "getweakrefcount(db) = " << manager.weakrefcount("db")
            << " (the basic proxy alice and carol share, bob's proxy)\n";

  std::cout << "the clients use db through their proxies:\n";
  alice.work();
  bob.work();
  carol.work();
  std::cout << "  db has been read " << alice.db->reads << " times\n";

  std::cout << "the manager releases db:\n";
  manager.release("db");  // bob's callback runs, then the resource is closed
  std::cout << "alice's proxy: " << alice.db << ", expired: " << alice.db.expired() << "\n";
  alice.work();
  bob.work();

  // Each weakref object counts once, and stops counting when its last handle
  // goes. A callback proxy is a weakref object of its own (basic proxies are
  // shared); erin's callback never runs: her proxy goes before the resource.
  std::cout << "a second resource, log:\n";
  Client dave{"dave", manager.open("log")};
  dave.work();
  std::cout << "  getweakrefcount(log) = " << manager.weakrefcount("log") << "\n";
  {
    Client erin{"erin", manager.open("log", [] { std::cout << "  erin is told\n"; })};
    std::cout << "  with erin's proxy too: getweakrefcount(log) = " << manager.weakrefcount("log")
              << "\n";
  }
  std::cout << "  erin gone: getweakrefcount(log) = " << manager.weakrefcount("log") << "\n";
  std::cout << "end of main:\n";
}
