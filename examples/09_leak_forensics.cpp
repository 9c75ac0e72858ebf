// Leak forensics, objgraph style: a settings window is opened and closed
// three times, yet its "ok" buttons stay alive. The type counts and their
// growth show that something leaks, find_backref_chain shows what holds it,
// and write_dot draws the referrers as a Graphviz graph (leak.dot, rendered
// to leak.png when `dot` is installed).
//
// The bug: each button subscribes its click handler to a global event bus,
// which holds the handler strongly, and keeps its subscription (strongly
// too, to unsubscribe later) -- but nothing ever unsubscribes. The bus is
// reachable, so the collector rightly keeps everything it reaches.
//
// Usage: 09_leak_forensics [file.dot]   (default: leak.dot in the current directory)
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>
#include <weakref/weakref.hpp>

namespace gc = weakref::gc;
using weakref::Strong;

struct Window;
struct Subscription;

struct Widget {
  std::string name;
  weakref::ref<Window> parent;        // weak: a child must not keep its window alive
  Strong<Subscription> subscription;  // kept to unsubscribe on close (never done)
  explicit Widget(std::string n) : name(std::move(n)) {}
  void trace(gc::Visitor& v) { v(parent, subscription); }
};

struct Window {
  std::string title;
  std::vector<Strong<Widget>> children;
  explicit Window(std::string t) : title(std::move(t)) {}
  void trace(gc::Visitor& v) { v(children); }
};

struct Subscription {
  std::string event;
  Strong<Widget> handler;  // the leak: a strong reference to the subscriber
  Subscription(std::string e, Strong<Widget> h) : event(std::move(e)), handler(std::move(h)) {}
  void trace(gc::Visitor& v) { v(handler); }
};

struct EventBus {
  std::vector<Strong<Subscription>> subscriptions;
  void subscribe(const std::string& event, const Strong<Widget>& w) {
    auto s = weakref::make<Subscription>(event, w);
    subscriptions.push_back(s);
    w->subscription = s;  // Widget <-> Subscription: a cycle, reachable from the bus
  }
  void trace(gc::Visitor& v) { v(subscriptions); }
};

// Remembers the focused widget weakly, as it should: a dashed edge in the graph.
struct FocusManager {
  weakref::ref<Widget> focused;
  void trace(gc::Visitor& v) { v(focused); }
};

// Globals: referenced from outside the traced graph, so they are roots.
Strong<EventBus> bus;
Strong<FocusManager> focus;

void open_and_close_settings(int n) {
  auto window = weakref::make<Window>("settings #" + std::to_string(n));
  for (const char* name : {"ok #", "title #"}) {
    auto w = weakref::make<Widget>(name + std::to_string(n));
    w->parent = window;
    window->children.push_back(w);
  }
  const Strong<Widget>& ok = window->children.front();
  bus->subscribe("click", ok);
  focus->focused = ok;
  std::cout << "  open and close '" << window->title << "'\n";
}  // the window and "title #n" die here; "ok #n" does not

// A chain element (Strong<void>: any type) described for people.
std::string describe(const Strong<void>& o) {
  if (auto w = weakref::exact_pointer_cast<Widget>(o)) return "Widget '" + w->name + "'";
  if (auto s = weakref::exact_pointer_cast<Subscription>(o))
    return "Subscription '" + s->event + "'";
  return weakref::type_name(o);
}

int main(int argc, char** argv) {
  gc::disable();  // the collections below are the explicit ones
  bus = weakref::make<EventBus>();
  focus = weakref::make<FocusManager>();

  std::cout << "1. Baseline\nmost common types:\n";
  gc::show_most_common_types();
  std::cout << "show_growth() (the first call reports every type):\n";
  gc::show_growth();

  std::cout << "\n2. The settings window, opened and closed three times\n";
  for (int n = 1; n <= 3; ++n) open_and_close_settings(n);
  std::cout << "gc::collect() found " << gc::collect()
            << " unreachable objects: the leak is reachable, not garbage\n";

  std::cout << "\n3. What is alive, and what grew since the baseline\nmost common types:\n";
  gc::show_most_common_types();
  std::cout << "show_growth():\n";
  gc::show_growth();
  std::cout << "one Widget and one Subscription more per window; the windows and their\n"
               "'title' widgets died when closed (no Window above)\n";

  std::cout << "\n4. Why is the focused button still alive?\n";
  const std::filesystem::path dot_file = argc > 1 ? argv[1] : "leak.dot";
  {
    const Strong<Widget> leaked = focus->focused();  // the weak ref says it is alive
    // The shortest chain of strong references from a root (an object held
    // from outside the traced graph: the global `bus`) to the widget. The
    // focus manager's weak reference keeps nothing alive, so it is not in it.
    {
      const std::vector<Strong<void>> chain = gc::find_backref_chain(leaked);
      for (std::size_t i = 0; i < chain.size(); ++i)
        std::cout << (i ? "  -> " : "  ") << describe(chain[i])
                  << (i == 0 ? "  (a root: the global `bus`)" : "") << "\n";
    }  // the chain's references go: they would make its objects look like roots

    // The referrers of the widget up to the roots (objgraph's show_backrefs):
    // strong references solid, weak ones dashed, roots as boxes. The
    // widget's count includes `leaked`, the handle the query is given.
    // Labels name the widgets and events (objgraph's extra_info) instead of
    // showing addresses, so the picture says which object is which.
    gc::DotOptions options{.max_depth = 3, .backrefs = true, .max_nodes = 20};
    options.show_addresses = false;
    options.extra_info = [](const Strong<void>& o) -> std::string {
      if (auto w = weakref::exact_pointer_cast<Widget>(o)) return "'" + w->name + "'";
      if (auto s = weakref::exact_pointer_cast<Subscription>(o)) return "'" + s->event + "'";
      return "";
    };
    try {
      gc::write_dot(dot_file.string(), leaked, options);
    } catch (const std::system_error& e) {
      std::cerr << e.what() << "\n";
      focus.reset(), bus.reset();
      return 1;
    }
  }  // `leaked` goes: it would keep the widget alive
  std::cout << "\n5. The graph around it\nwrote " << dot_file.string() << "\n";
  // Rendering depends on the machine: its messages go to stderr.
  std::cout.flush();
  std::filesystem::path png_file = dot_file;
  png_file.replace_extension(".png");
  if (std::system("command -v dot >/dev/null 2>&1") == 0) {
    const std::string cmd = "dot -Tpng '" + dot_file.string() + "' -o '" + png_file.string() + "'";
    std::cerr << (std::system(cmd.c_str()) == 0 ? "rendered " : "could not render ")
              << png_file.string() << "\n";
  } else {
    std::cerr << "Graphviz's dot is not installed: no " << png_file.string() << "\n";
  }

  std::cout << "\n6. The fix: unsubscribe (or let the bus hold its handlers weakly)\n";
  bus->subscriptions.clear();
  std::cout << "bus->subscriptions.clear(): nothing dies yet, each widget and its\n"
               "subscription refer to each other. most common types:\n";
  gc::show_most_common_types();
  std::cout << "gc::collect() found " << gc::collect() << " unreachable objects\n";
  std::cout << "most common types:\n";
  gc::show_most_common_types();

  focus.reset(), bus.reset();  // before the program's statics go
  gc::enable();
}
