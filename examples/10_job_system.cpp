// A job system: worker threads build and edit one scene graph that they
// share (weakref::SharedHeap), a UI thread receives the nodes' deaths
// through a weakref::ReferenceQueue, and the workers share an asset cache
// (weakref::ConcurrentWeakValueDictionary).
//
// Every child holds its parent strongly, so each building (a node and its
// rooms) is a cycle. The rules the program follows (docs/threads.md):
//  * A worker builds a building in its own heap, without any lock; then,
//    holding the scene, it adopts the building into the scene and wires it
//    under the root.
//  * Any thread that holds the scene may make nodes into it (they go there
//    while it is held) and write the members of its nodes.
//  * Any thread may collect the scene (collect() takes it): the buildings
//    taken out of the graph are found and collected while every thread is
//    alive.
//  * Nothing of the UI's runs on the workers: each node's finalizer is
//    registered with the UI thread's queue, and runs there.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <iostream>
#include <mutex>
#include <string>
#include <thread>
#include <vector>
#include <weakref/weakref.hpp>

namespace gc = weakref::gc;
using weakref::Strong;

struct Texture {
  std::string name;
  explicit Texture(std::string n) : name(std::move(n)) {}
};

struct Node {
  std::string name;
  Strong<Node> parent;  // child -> parent: every parent/child pair is a cycle
  std::vector<Strong<Node>> children;
  Strong<Texture> texture;
  Node(std::string n, Strong<Texture> t) : name(std::move(n)), texture(std::move(t)) {}
  void trace(gc::Visitor& v) { v(parent, children, texture); }
};

// Worker threads running jobs in the order they were submitted.
class JobSystem {
 public:
  explicit JobSystem(int workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { work(); });
  }
  ~JobSystem() {
    {
      std::lock_guard<std::mutex> g(mu_);
      stop_ = true;
    }
    ready_.notify_all();
    for (auto& t : threads_) t.join();
  }
  template <class F>
  auto submit(F f) -> std::future<decltype(f())> {
    auto task = std::make_shared<std::packaged_task<decltype(f())()>>(std::move(f));
    auto result = task->get_future();
    {
      std::lock_guard<std::mutex> g(mu_);
      jobs_.emplace_back([task] { (*task)(); });
    }
    ready_.notify_one();
    return result;
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> job;
      {
        std::unique_lock<std::mutex> g(mu_);
        ready_.wait(g, [this] { return stop_ || !jobs_.empty(); });
        if (jobs_.empty()) return;
        job = std::move(jobs_.front());
        jobs_.pop_front();
      }
      job();
    }
  }
  std::mutex mu_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> jobs_;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// The UI thread: it runs what its queue receives, and keeps its own state.
class UiThread {
 public:
  UiThread() : thread_([this] { run(); }) {}
  ~UiThread() { stop(); }
  weakref::ReferenceQueue& deaths() { return deaths_; }
  // Stops the thread once everything posted so far has been run.
  void stop() {
    if (!thread_.joinable()) return;
    stop_.store(true);
    thread_.join();
  }
  // Only the UI thread writes these; read them after stop().
  std::vector<std::string> removed;
  bool all_on_ui_thread = true;
  static thread_local bool on_ui_thread;

 private:
  void run() {
    using namespace std::chrono_literals;
    on_ui_thread = true;
    while (!stop_.load())
      if (auto death = deaths_.wait_for(5ms)) (*death)();
    deaths_.run_pending();
  }
  weakref::ReferenceQueue deaths_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

thread_local bool UiThread::on_ui_thread = false;

int main() {
  gc::disable();  // every collection below is an explicit one
  UiThread ui;
  weakref::ConcurrentWeakValueDictionary<std::string, Texture> assets;
  weakref::SharedHeap scene;

  // Loads a texture once, whichever worker asks first; the cache forgets
  // it when the last node using it dies.
  auto texture = [&assets](const std::string& name) {
    if (Strong<Texture> t = assets.get(name)) return t;
    return assets.setdefault(name, weakref::make<Texture>(name));
  };
  // Registers n's death with the UI thread: its finalizer runs there.
  auto watch = [&ui](const Strong<Node>& n) {
    ui.deaths().finalize(n, [&ui, name = n->name] {
      ui.all_on_ui_thread = ui.all_on_ui_thread && UiThread::on_ui_thread;
      ui.removed.push_back(name);
    });
  };

  Strong<Node> root;
  {
    std::lock_guard<weakref::SharedHeap> hold(scene);
    root = weakref::make<Node>("root", texture("sky"));  // made into the scene
  }
  watch(root);
  // Reading the scene's members holds it too: workers may be writing them.
  auto children_of_root = [&] {
    std::lock_guard<weakref::SharedHeap> hold(scene);
    return root->children.size();
  };

  {
    JobSystem jobs(3);
    std::vector<std::future<void>> done;
    // Each job builds a building in its worker's own heap, then adopts it
    // into the scene and wires it under the root.
    for (int b = 0; b < 6; ++b) {
      done.push_back(jobs.submit([&, b] {
        auto building = weakref::make<Node>("building" + std::to_string(b), texture("brick"));
        watch(building);
        for (const char* room : {"hall", "kitchen", "attic"}) {
          auto r = weakref::make<Node>(building->name + "." + room, texture(room));
          r->parent = building;
          building->children.push_back(r);
          watch(r);
        }
        std::lock_guard<weakref::SharedHeap> hold(scene);
        scene.adopt(building);
        building->parent = root;
        root->children.push_back(building);
      }));
    }
    for (auto& d : done) d.get();
    done.clear();
    std::cout << "scene built: " << children_of_root() << " buildings, " << assets.size()
              << " textures loaded once each\n";

    // Editing jobs: two take a building out of the scene (its cycles are
    // garbage now), two make lamps directly in the scene.
    for (int e = 0; e < 2; ++e) {
      done.push_back(jobs.submit([&] {
        std::lock_guard<weakref::SharedHeap> hold(scene);
        root->children.erase(root->children.begin());
      }));
      done.push_back(jobs.submit([&, e] {
        std::lock_guard<weakref::SharedHeap> hold(scene);
        auto lamp = weakref::make<Node>("lamp" + std::to_string(e), texture("light"));
        lamp->parent = root;
        root->children.push_back(lamp);
        watch(lamp);
      }));
    }
    for (auto& d : done) d.get();
    std::cout << "scene edited: " << children_of_root() << " children under the root\n";

    // Any worker collects the scene, while every thread is alive.
    std::size_t found = jobs.submit([&] { return scene.collect(); }).get();
    std::cout << "a worker collected the scene: " << found << " unreachable objects\n";

    // The main thread lets go of the root: the rest is one big cycle.
    root = nullptr;
    found = jobs.submit([&] { return scene.collect(); }).get();
    std::cout << "after the root is dropped: " << found << " unreachable objects\n";
  }

  ui.stop();
  std::sort(ui.removed.begin(), ui.removed.end());
  std::cout << "the UI thread received " << ui.removed.size() << " deaths"
            << (ui.all_on_ui_thread ? ", all on the UI thread" : ", some elsewhere (wrong)")
            << ":\n";
  for (const auto& name : ui.removed) std::cout << "  " << name << "\n";
  std::cout << "textures still cached: " << assets.size() << "\n";
  std::cout << "objects left in any heap: " << gc::get_objects().size() << "\n";
  std::cout << "gc::garbage(): " << gc::garbage().size() << "\n";
  gc::enable();
}
