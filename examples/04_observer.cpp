// Observers that unsubscribe by dying. A Subject holds its observers in a
// WeakSet and an EventManager attaches bookkeeping to each observer in a
// WeakKeyDictionary: neither keeps an observer alive, and when one dies its
// element and its entry vanish at once -- even when it dies in the middle of
// a notification, killed by another observer's handler: the loop goes on,
// skips it, and size() is already right.
//
// Last, a handler that captures its widget: a WeakKeyDictionary value that
// refers to its own key. Python's WeakKeyDictionary (and Java's WeakHashMap)
// would keep that widget alive as long as the dictionary; here entries are
// ephemerons, and gc::collect() frees the widget with its handler.
#include <functional>
#include <iostream>
#include <string>
#include <utility>
#include <weakref/weakref.hpp>

using weakref::Strong;

struct Observer {
  std::string name;
  std::function<void(const std::string&)> react;  // extra behaviour, may be empty
  explicit Observer(std::string n, std::function<void(const std::string&)> r = {})
      : name(std::move(n)), react(std::move(r)) {}
  ~Observer() { std::cout << "    (" << name << " dies)\n"; }
  void on_event(const std::string& event) {
    std::cout << "    " << name << " got '" << event << "'\n";
    if (react) react(event);
  }
};

// What the manager knows about each observer, dropped with the observer.
struct Meta {
  int subscribed_at;  // a sequence number, not a time: the output is deterministic
  int received = 0;
};

class EventManager {
 public:
  void subscribed(const Strong<Observer>& o) { meta_.set(o, Meta{++seq_}); }
  void delivered(const Strong<Observer>& o) { ++meta_.at(o).received; }
  std::size_t size() const { return meta_.size(); }
  void report() const {  // insertion order: the order of subscription
    for (const auto& [observer, meta] : meta_)
      std::cout << "  " << observer->name << ": subscribed #" << meta.subscribed_at << ", received "
                << meta.received << " events\n";
  }

 private:
  weakref::WeakKeyDictionary<Observer, Meta> meta_;
  int seq_ = 0;
};

class Subject {
 public:
  explicit Subject(EventManager& m) : manager_(m) {}
  void attach(const Strong<Observer>& o) {
    observers_.add(o);
    manager_.subscribed(o);
  }
  void notify(const std::string& event) {
    std::cout << "notify '" << event << "' (" << observers_.size() << " observers):\n";
    // Each observer is held strongly while it is the current one; deaths of
    // the others during the loop never invalidate the iteration.
    for (const Strong<Observer>& o : observers_) {
      o->on_event(event);
      manager_.delivered(o);
    }
  }
  std::size_t size() const { return observers_.size(); }

 private:
  weakref::WeakSet<Observer> observers_;  // iterated in insertion order
  EventManager& manager_;
};

// A traced widget (it has a trace(), so the collector may free it) and a
// click handler that captures it, attached to it in a WeakKeyDictionary held
// by a traced object (the collector sees the dictionary's entries).
struct Widget {
  std::string name;
  explicit Widget(std::string n) : name(std::move(n)) {}
  ~Widget() { std::cout << "    (widget '" << name << "' dies)\n"; }
  void trace(weakref::gc::Visitor&) {}
};

struct ClickHandler {
  Strong<Widget> widget;  // the capture: the handler refers to its widget
  explicit ClickHandler(Strong<Widget> w) : widget(std::move(w)) {}
  ~ClickHandler() { std::cout << "    (the handler of '" << widget->name << "' dies)\n"; }
  void operator()() const { std::cout << "    '" << widget->name << "' clicked\n"; }
  void trace(weakref::gc::Visitor& v) { v(widget); }
};

struct Clicks {
  weakref::WeakKeyDictionary<Widget, Strong<ClickHandler>> handlers;
  void trace(weakref::gc::Visitor& v) { v(handlers); }
};

void handler_captures_its_widget() {
  std::cout << "a handler that captures its widget:\n";
  const Strong<Clicks> clicks = weakref::make<Clicks>();
  {
    Strong<Widget> ok = weakref::make<Widget>("ok");
    clicks->handlers.set(ok, weakref::make<ClickHandler>(ok));  // the value refers to its key
    (*clicks->handlers.at(ok))();
  }  // the program's last reference to the widget goes
  std::cout << "  the widget's last reference is gone; the dictionary still has "
            << clicks->handlers.size() << " entry\n"
            << "  (only its own handler refers to the widget)\n";
  const std::size_t found = weakref::gc::collect();
  std::cout << "  gc::collect() found " << found << " unreachable objects; the dictionary has "
            << clicks->handlers.size() << " entries\n";
}

int main() {
  weakref::gc::disable();  // the collection below is the explicit one
  EventManager manager;
  Subject subject(manager);
  auto sizes = [&](const char* indent) {
    std::cout << indent << "subject: " << subject.size()
              << " observers, manager: " << manager.size() << " entries\n";
  };

  // The program's own strong references: the observers live as long as these.
  Strong<Observer> alice, bob, carol, dave;
  alice = weakref::make<Observer>("alice");
  bob = weakref::make<Observer>("bob");
  carol = weakref::make<Observer>("carol", [&](const std::string& event) {
    if (event != "kick dave") return;
    dave.reset();  // dave's last strong reference: he dies now, mid-loop
    std::cout << "    carol kicked dave; still in the loop:\n";
    sizes("      ");
  });
  dave = weakref::make<Observer>("dave");
  std::cout << "alice, bob, carol and dave subscribe:\n";
  for (const auto& o : {alice, bob, carol, dave}) subject.attach(o);
  sizes("  ");

  subject.notify("hello");

  std::cout << "bob goes away:\n";
  bob.reset();  // no unsubscribe call: his death removes him from both
  sizes("  ");

  subject.notify("kick dave");  // dave comes after carol: he is not notified
  sizes("  ");

  subject.notify("bye");
  std::cout << "manager's records:\n";
  manager.report();

  handler_captures_its_widget();
  weakref::gc::enable();
  std::cout << "end of main:\n";
}
