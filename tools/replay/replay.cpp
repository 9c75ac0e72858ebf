// The replay's world (objects, values, the namespace, callbacks) and its
// operation table: kOps below is the one place that says which library call
// each SPEC.md operation makes.
//
// Invariants the trace depends on (each is oracle.py's behaviour):
//  * Binding a name makes the new value first, then moves the old value out
//    of the namespace and drops it (its callbacks run while the name is
//    unbound), then binds the name. Unbinding moves the value out before
//    dropping it. So no callback ever runs while a namespace entry is half
//    updated, and a callback may unbind any name.
//  * A slot write installs the new value before dropping the old one
//    (CPython's member setter); ~Obj counts the death first (Obj.__del__),
//    then empties a, b, c in that order, each slot emptied before its old
//    value is dropped (CPython's clear_slots).
//  * An op's operands are held as oracle.py's `vals` holds them -- objects
//    strongly, weak values as handles to their weakref objects -- until the
//    op's library call returns; then they are dropped last to first, and
//    only then is the result line printed.
//  * Callbacks and finalizer functions hold strings and the World only,
//    never a scenario value, so they keep nothing alive and never make a
//    cycle the collector cannot see.
#include <algorithm>
#include <cstddef>
#include <exception>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>
#include <weakref/weakref.hpp>

#include "op_table.hpp"
#include "replay.hpp"

namespace weakref::replay {

namespace {

struct Obj;
using Method = WeakMethod<std::string (Obj::*)() const>;

// A slot of an object: empty, a strong reference, or a weak value (setref).
using Slot = std::variant<std::monostate, Strong<Obj>, ref<Obj>, proxy<Obj>, Method>;

long g_deaths = 0;  // scenario objects destroyed so far (oracle.py's _deaths)
long g_live = 0;    // scenario objects alive now

// A scenario object: a fixed label and three slots the collector sees.
struct Obj {
  explicit Obj(std::string l) : label(std::move(l)) { ++g_live; }
  Obj(const Obj&) = delete;
  Obj& operator=(const Obj&) = delete;
  ~Obj() {
    ++g_deaths;
    --g_live;
    for (Slot* s : {&a, &b, &c}) Slot old = std::exchange(*s, Slot{});
  }
  // The method `wm` binds: returns the label.
  std::string m() const { return label; }
  void trace(gc::Visitor& v) { v(a, b, c); }

  const std::string label;
  Slot a, b, c;
};

using Wvd = WeakValueDictionary<std::string, Obj>;
using Wkd = WeakKeyDictionary<Obj, std::string>;
using Wset = WeakSet<Obj>;

// What a variable holds. Containers are managed objects, so that `let`
// shares one and an iteration can hold it while the loop unbinds its name.
using Value = std::variant<Strong<Obj>, ref<Obj>, proxy<Obj>, Method, finalize, Strong<Wvd>,
                           Strong<Wkd>, Strong<Wset>>;

template <class... T>
bool holds(const Value& v) {
  return (std::holds_alternative<T>(v) || ...);
}

// The operand kinds of oracle.py (KINDS): letter, description, test.
struct Kind {
  char letter;
  const char* description;
  bool (*accepts)(const Value&);
};
constexpr Kind kKinds[] = {
    {'a', "any value", [](const Value&) { return true; }},
    {'o', "an object", holds<Strong<Obj>>},
    {'w', "a ref, proxy or weak method", holds<ref<Obj>, proxy<Obj>, Method>},
    {'r', "a ref", holds<ref<Obj>>},
    {'p', "a proxy", holds<proxy<Obj>>},
    {'m', "a weak method", holds<Method>},
    {'f', "a finalizer", holds<finalize>},
    {'d', "a WeakValueDictionary", holds<Strong<Wvd>>},
    {'k', "a WeakKeyDictionary", holds<Strong<Wkd>>},
    {'s', "a WeakSet", holds<Strong<Wset>>},
};
const Kind* kind_of(char letter) {
  for (const Kind& k : kKinds)
    if (k.letter == letter) return &k;
  return nullptr;
}

// `same`: the very same object, weakref object, finalizer or container.
bool same(const Value& x, const Value& y) {
  if (x.index() != y.index()) return false;
  return std::visit(
      [&](const auto& a) {
        using A = std::decay_t<decltype(a)>;
        const A& b = std::get<A>(y);
        if constexpr (requires { a.is(b); })
          return a.is(b);
        else
          return a == b;  // Strong: identity
      },
      x);
}

// Calls f with the weak value (ref, proxy or WeakMethod) a Value holds.
template <class F>
void with_weak_value(const Value& v, F&& f) {
  std::visit(
      [&](const auto& x) {
        using X = std::decay_t<decltype(x)>;
        if constexpr (std::is_same_v<X, ref<Obj>> || std::is_same_v<X, proxy<Obj>> ||
                      std::is_same_v<X, Method>)
          f(x);
      },
      v);
}

// Is `w` (from getweakrefs) the weakref object a variable holds? (Only the
// weak values: ref<>'s converting constructor must not make a basic ref of
// an object here.)
bool is_weakref_of(const Value& v, const ref<>& w) {
  if (const auto* r = std::get_if<ref<Obj>>(&v)) return w.is(*r);
  if (const auto* p = std::get_if<proxy<Obj>>(&v)) return w.is(*p);
  if (const auto* m = std::get_if<Method>(&v)) return w.is(*m);
  return false;
}

std::string py(bool b) { return b ? "True" : "False"; }
std::string label_of(const Strong<Obj>& o) { return o ? o->label : "None"; }
std::string bracket(const std::vector<std::string>& items) {
  std::string s = "[";
  for (const std::string& i : items) s += (s.size() > 1 ? " " : "") + i;
  return s + "]";
}
// Python's sorted() of (first, second) string pairs, printed "first=second".
std::string sorted_pairs(std::vector<std::pair<std::string, std::string>> items) {
  std::sort(items.begin(), items.end());
  std::vector<std::string> out;
  for (auto& [k, v] : items) out.push_back(k + "=" + v);
  return bracket(out);
}
std::string sorted_list(std::vector<std::string> items) {
  std::sort(items.begin(), items.end());
  return bracket(items);
}

// Raised by a `cb:raise` action; the unraisable hook prints its owner and
// label.
struct CallbackRaised : std::exception {
  std::string owner, label;
  CallbackRaised(std::string o, std::string l) : owner(std::move(o)), label(std::move(l)) {}
  const char* what() const noexcept override { return "cb:raise"; }
};

}  // namespace

class World;

namespace {

// A callback token (SPEC "Callback actions") bound to its event text; also a
// finalizer's function.
class Callback {
 public:
  Callback(World& world, const std::string& event, const std::string& owner,
           const std::string& label, std::string_view token)
      : world_(&world), text_(event + " " + owner + " " + label), owner_(owner), label_(label) {
    if (token == "cb:raise")
      action_ = Action::raise;
    else if (token == "cb:collect")
      action_ = Action::collect;
    else if (token.starts_with("cb:del:"))
      action_ = Action::del, victim_ = token.substr(7);
  }
  void operator()() const;

 private:
  enum class Action { none, del, raise, collect };
  World* world_;
  std::string text_, owner_, label_, victim_;
  Action action_ = Action::none;
};

// The resolved operands of one op (oracle.py's `vals`), dropped last to first.
class Operands {
 public:
  explicit Operands(const std::vector<std::string>& tokens) : tokens_(tokens) {}
  Operands(const Operands&) = delete;
  Operands& operator=(const Operands&) = delete;
  ~Operands() {
    while (!vals_.empty()) vals_.pop_back();
  }

  // Operand i's token (the op name is not an operand).
  const std::string& tok(std::size_t i) const { return tokens_[i + 1]; }
  // Whether the optional operand i (a callback token) is there.
  bool given(std::size_t i) const { return i + 1 < tokens_.size(); }
  // Operand i's value: a read name, or the object of a slot operand X.s.
  template <class T>
  T& get(std::size_t i) {
    return std::get<T>(value(i));
  }
  Value& value(std::size_t i) { return *vals_[i]; }
  // An 'O' operand: false for '-'.
  bool has(std::size_t i) const { return vals_[i].has_value(); }
  // Slot s of object X for an operand X.s.
  Slot& slot(std::size_t i) {
    Obj& o = *get<Strong<Obj>>(i);
    const char s = tok(i).back();
    return s == 'a' ? o.a : s == 'b' ? o.b : o.c;
  }
  void push(std::optional<Value> v) { vals_.push_back(std::move(v)); }

 private:
  const std::vector<std::string>& tokens_;
  std::vector<std::optional<Value>> vals_;
};

}  // namespace

class World {
 public:
  explicit World(std::ostream* out) : out_(out) {
    previous_hook_ = set_unraisable_hook([this](const UnraisableInfo& info) {
      try {
        std::rethrow_exception(info.exception);
      } catch (const CallbackRaised& e) {
        emit("unraisable " + e.owner + " " + e.label);
      } catch (...) {
        ++internal_errors_;
        default_unraisable_hook(info);
      }
    });
    gc::disable();
    gc::collect();
  }
  World(const World&) = delete;
  World& operator=(const World&) = delete;
  // Silently drops everything the scenario made (see Session::~Session).
  ~World() {
    out_ = nullptr;
    while (!env_.empty()) unbind(std::string(env_.begin()->first));
    for (int i = 0; i < 1000; ++i) {
      const long before = g_deaths;
      if (gc::collect() == 0 && g_deaths == before) break;
    }
    set_unraisable_hook(std::move(previous_hook_));
  }

  int run(const std::vector<Op>& ops, OnExit on_exit, std::ostream& err);

  // -- What the operations use -------------------------------------------------

  // Prints one trace line for the op now running.
  void emit(std::string_view text) {
    if (!out_) return;
    *out_ << line_ << ": " << text << '\n';
    out_->flush();
  }
  void bind(const std::string& name, Value v) {
    unbind(name);
    env_.insert_or_assign(name, std::move(v));
  }
  void unbind(const std::string& name) {
    auto it = env_.find(name);
    if (it == env_.end()) return;
    Value old = std::move(it->second);
    env_.erase(it);
  }
  // Slot writes: the new value is in place before the old one is dropped.
  template <class V>
  static void assign(Slot& slot, V&& v) {
    Slot old = std::exchange(slot, std::forward<V>(v));
  }
  // `collect` and cb:collect: one collection; counts the objects destroyed.
  void collect() {
    const long before = g_deaths;
    gc::collect();
    emit("collect -> " + std::to_string(g_deaths - before));
  }
  Callback callback(const char* event, const std::string& owner, const Strong<Obj>& referent,
                    std::string_view token) {
    return Callback(*this, event, owner, referent->label, token);
  }
  // `refs`: the smallest name bound to each weakref object, +K unnamed.
  std::string refs(const Strong<Obj>& obj) {
    std::vector<std::string> names;
    int unnamed = 0;
    for (const ref<>& w : getweakrefs(obj)) {
      auto it = std::find_if(env_.begin(), env_.end(),
                             [&](const auto& e) { return is_weakref_of(e.second, w); });
      if (it != env_.end())
        names.push_back(it->first);
      else
        ++unnamed;
    }
    std::sort(names.begin(), names.end());
    if (unnamed) names.push_back("+" + std::to_string(unnamed));
    return bracket(names);
  }
  // `*.iterdel`: at the first element unbind `victim`; the iterator holds
  // the element until it moves on, as the Python generator does.
  template <class Range>
  std::string iterdel(Range&& items, const std::string& victim) {
    try {
      bool first = true;
      for (auto it = items.begin(); it != items.end(); ++it) {
        if (first) unbind(victim);
        first = false;
      }
    } catch (const std::exception&) {
      return "error";
    }
    return "ok";
  }
  // `exit`: Python's finalize._exitfunc() (the program) or just the end.
  void exit() {
    if (on_exit_ == OnExit::run_exitfunc) finalize::exitfunc();
    exited_ = true;
  }

 private:
  void run_op(const Op& op);

  std::map<std::string, Value, std::less<>> env_;  // the scenario's namespace
  int line_ = 0;
  std::ostream* out_;
  std::ostream* err_ = nullptr;
  OnExit on_exit_ = OnExit::end_of_input;
  bool exited_ = false;
  long internal_errors_ = 0;
  UnraisableHook previous_hook_;
};

namespace {

void Callback::operator()() const {
  world_->emit(text_);
  switch (action_) {
    case Action::none:
      break;
    case Action::del:
      world_->unbind(victim_);
      break;
    case Action::raise:
      throw CallbackRaised(owner_, label_);
    case Action::collect:
      world_->collect();
      break;
  }
}

using Result = std::optional<std::string>;
struct OpSpec {
  std::string_view name;
  // Operand letters (oracle.py's OPS):
  //   W name bound by the op      U name unbound by the op (not read)
  //   K plain string (KEY/VALUE)  F flag 0|1         C optional callback (last)
  //   S slot X.s of object X      O object or '-'
  //   read names, by kind: a any  o object  w ref/proxy/weak method  r ref
  //   p proxy  m weak method  f finalizer  d WeakValueDictionary
  //   k WeakKeyDictionary  s WeakSet
  std::string_view signature;
  Result (*run)(World&, Operands&);
};

// A weakref, proxy or WeakMethod to operand 1, with operand 2's callback.
template <class W>
W make_weak(World& w, Operands& a) {
  const Strong<Obj>& x = a.get<Strong<Obj>>(1);
  if constexpr (std::is_same_v<W, Method>)
    return a.given(2) ? Method(x, &Obj::m, w.callback("cb", a.tok(0), x, a.tok(2)))
                      : Method(x, &Obj::m);
  else
    return a.given(2) ? W(x, w.callback("cb", a.tok(0), x, a.tok(2))) : W(x);
}

Result fin_info(const std::optional<finalize::info>& info) {
  return info ? exact_pointer_cast<Obj>(info->object)->label : "None";
}

// -- The operation table: each SPEC.md operation and its library call --------
constexpr OpSpec kOps[] = {
    // Objects and variables
    {"new", "W", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make<Obj>(a.tok(0)));
       return {};
     }},
    {"let", "Wa", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), a.value(1));
       return {};
     }},
    {"del", "U", [](World& w, Operands& a) -> Result {
       w.unbind(a.tok(0));
       return {};
     }},
    {"set", "SO", [](World&, Operands& a) -> Result {
       if (a.has(1))
         World::assign(a.slot(0), a.get<Strong<Obj>>(1));
       else
         World::assign(a.slot(0), std::monostate{});
       return {};
     }},
    {"setref", "Sw", [](World&, Operands& a) -> Result {
       with_weak_value(a.value(1), [&](const auto& w) { World::assign(a.slot(0), w); });
       return {};
     }},
    {"same", "aa", [](World&, Operands& a) -> Result { return py(same(a.value(0), a.value(1))); }},

    // Weak references
    {"ref", "WoC", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make_weak<ref<Obj>>(w, a));
       return {};
     }},
    {"proxy", "WoC", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make_weak<proxy<Obj>>(w, a));
       return {};
     }},
    {"wm", "WoC", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make_weak<Method>(w, a));
       return {};
     }},
    {"get", "r", [](World&, Operands& a) -> Result { return label_of(a.get<ref<Obj>>(0)()); }},
    {"use", "p", [](World&, Operands& a) -> Result {
       try {
         return a.get<proxy<Obj>>(0)->label;
       } catch (const ReferenceError&) {
         return "ReferenceError";
       }
     }},
    {"wm.call", "m", [](World&, Operands& a) -> Result {
       std::optional<std::string> label = a.get<Method>(0)();
       return label ? *label : "None";
     }},
    {"eq", "rr", [](World&, Operands& a) -> Result {
       return py(a.get<ref<Obj>>(0) == a.get<ref<Obj>>(1));
     }},
    {"count", "o", [](World&, Operands& a) -> Result {
       return std::to_string(getweakrefcount(a.get<Strong<Obj>>(0)));
     }},
    {"refs", "o", [](World& w, Operands& a) -> Result { return w.refs(a.get<Strong<Obj>>(0)); }},

    // Finalizers
    {"fin", "WoC", [](World& w, Operands& a) -> Result {
       const Strong<Obj>& x = a.get<Strong<Obj>>(1);
       w.bind(a.tok(0), finalize(x, w.callback("fin", a.tok(0), x, a.given(2) ? a.tok(2) : "cb")));
       return {};
     }},
    {"fin.call", "f", [](World&, Operands& a) -> Result {
       try {
         a.get<finalize>(0)();
       } catch (const CallbackRaised&) {
         return "raise";
       }
       return {};
     }},
    {"fin.alive", "f", [](World&, Operands& a) -> Result { return py(a.get<finalize>(0).alive()); }},
    {"fin.peek", "f", [](World&, Operands& a) -> Result { return fin_info(a.get<finalize>(0).peek()); }},
    {"fin.detach", "f", [](World&, Operands& a) -> Result {
       return fin_info(a.get<finalize>(0).detach());
     }},
    {"fin.atexit", "fF", [](World&, Operands& a) -> Result {
       a.get<finalize>(0).atexit(a.tok(1) == "1");
       return {};
     }},

    // WeakValueDictionary
    {"wvd", "W", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make<Wvd>());
       return {};
     }},
    {"wvd.set", "dKo", [](World&, Operands& a) -> Result {
       a.get<Strong<Wvd>>(0)->set(a.tok(1), a.get<Strong<Obj>>(2));
       return {};
     }},
    {"wvd.get", "dK", [](World&, Operands& a) -> Result {
       return label_of(a.get<Strong<Wvd>>(0)->get(a.tok(1)));
     }},
    {"wvd.has", "dK", [](World&, Operands& a) -> Result {
       return py(a.get<Strong<Wvd>>(0)->contains(a.tok(1)));
     }},
    {"wvd.del", "dK", [](World&, Operands& a) -> Result {
       try {
         a.get<Strong<Wvd>>(0)->del(a.tok(1));
       } catch (const KeyError&) {
         return "KeyError";
       }
       return {};
     }},
    {"wvd.pop", "dK", [](World&, Operands& a) -> Result {
       try {
         return a.get<Strong<Wvd>>(0)->pop(a.tok(1))->label;
       } catch (const KeyError&) {
         return "KeyError";
       }
     }},
    {"wvd.setdefault", "dKo", [](World&, Operands& a) -> Result {
       return a.get<Strong<Wvd>>(0)->setdefault(a.tok(1), a.get<Strong<Obj>>(2))->label;
     }},
    {"wvd.len", "d", [](World&, Operands& a) -> Result {
       return std::to_string(a.get<Strong<Wvd>>(0)->size());
     }},
    {"wvd.keys", "d", [](World&, Operands& a) -> Result {
       std::vector<std::string> keys;
       for (const std::string& k : a.get<Strong<Wvd>>(0)->keys()) keys.push_back(k);
       return sorted_list(std::move(keys));
     }},
    {"wvd.items", "d", [](World&, Operands& a) -> Result {
       std::vector<std::pair<std::string, std::string>> items;
       for (const auto& [k, v] : *a.get<Strong<Wvd>>(0)) items.emplace_back(k, v->label);
       return sorted_pairs(std::move(items));
     }},
    {"wvd.clear", "d", [](World&, Operands& a) -> Result {
       a.get<Strong<Wvd>>(0)->clear();
       return {};
     }},
    {"wvd.iterdel", "dU", [](World& w, Operands& a) -> Result {
       return w.iterdel(a.get<Strong<Wvd>>(0)->items(), a.tok(1));
     }},

    // WeakKeyDictionary
    {"wkd", "W", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make<Wkd>());
       return {};
     }},
    {"wkd.set", "koK", [](World&, Operands& a) -> Result {
       a.get<Strong<Wkd>>(0)->set(a.get<Strong<Obj>>(1), a.tok(2));
       return {};
     }},
    {"wkd.get", "ko", [](World&, Operands& a) -> Result {
       return a.get<Strong<Wkd>>(0)->get(a.get<Strong<Obj>>(1)).value_or("None");
     }},
    {"wkd.has", "ko", [](World&, Operands& a) -> Result {
       return py(a.get<Strong<Wkd>>(0)->contains(a.get<Strong<Obj>>(1)));
     }},
    {"wkd.del", "ko", [](World&, Operands& a) -> Result {
       try {
         a.get<Strong<Wkd>>(0)->del(a.get<Strong<Obj>>(1));
       } catch (const KeyError&) {
         return "KeyError";
       }
       return {};
     }},
    {"wkd.pop", "ko", [](World&, Operands& a) -> Result {
       try {
         return a.get<Strong<Wkd>>(0)->pop(a.get<Strong<Obj>>(1));
       } catch (const KeyError&) {
         return "KeyError";
       }
     }},
    {"wkd.len", "k", [](World&, Operands& a) -> Result {
       return std::to_string(a.get<Strong<Wkd>>(0)->size());
     }},
    {"wkd.keys", "k", [](World&, Operands& a) -> Result {
       std::vector<std::string> labels;
       for (const Strong<Obj>& k : a.get<Strong<Wkd>>(0)->keys()) labels.push_back(k->label);
       return sorted_list(std::move(labels));
     }},
    {"wkd.items", "k", [](World&, Operands& a) -> Result {
       std::vector<std::pair<std::string, std::string>> items;
       for (const auto& [k, v] : *a.get<Strong<Wkd>>(0)) items.emplace_back(k->label, v);
       return sorted_pairs(std::move(items));
     }},
    {"wkd.clear", "k", [](World&, Operands& a) -> Result {
       a.get<Strong<Wkd>>(0)->clear();
       return {};
     }},
    {"wkd.iterdel", "kU", [](World& w, Operands& a) -> Result {
       return w.iterdel(a.get<Strong<Wkd>>(0)->items(), a.tok(1));
     }},

    // WeakSet
    {"wset", "W", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make<Wset>());
       return {};
     }},
    {"wset.add", "so", [](World&, Operands& a) -> Result {
       a.get<Strong<Wset>>(0)->add(a.get<Strong<Obj>>(1));
       return {};
     }},
    {"wset.discard", "so", [](World&, Operands& a) -> Result {
       a.get<Strong<Wset>>(0)->discard(a.get<Strong<Obj>>(1));
       return {};
     }},
    {"wset.remove", "so", [](World&, Operands& a) -> Result {
       try {
         a.get<Strong<Wset>>(0)->remove(a.get<Strong<Obj>>(1));
       } catch (const KeyError&) {
         return "KeyError";
       }
       return {};
     }},
    {"wset.has", "so", [](World&, Operands& a) -> Result {
       return py(a.get<Strong<Wset>>(0)->contains(a.get<Strong<Obj>>(1)));
     }},
    {"wset.len", "s", [](World&, Operands& a) -> Result {
       return std::to_string(a.get<Strong<Wset>>(0)->size());
     }},
    {"wset.items", "s", [](World&, Operands& a) -> Result {
       std::vector<std::string> labels;
       for (const Strong<Obj>& x : *a.get<Strong<Wset>>(0)) labels.push_back(x->label);
       return sorted_list(std::move(labels));
     }},
    {"wset.clear", "s", [](World&, Operands& a) -> Result {
       a.get<Strong<Wset>>(0)->clear();
       return {};
     }},
    {"wset.iterdel", "sU", [](World& w, Operands& a) -> Result {
       return w.iterdel(*a.get<Strong<Wset>>(0), a.tok(1));
     }},
    {"wset.union", "Wss", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make<Wset>(a.get<Strong<Wset>>(1)->union_(*a.get<Strong<Wset>>(2))));
       return {};
     }},
    {"wset.inter", "Wss", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make<Wset>(a.get<Strong<Wset>>(1)->intersection(*a.get<Strong<Wset>>(2))));
       return {};
     }},
    {"wset.diff", "Wss", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0), make<Wset>(a.get<Strong<Wset>>(1)->difference(*a.get<Strong<Wset>>(2))));
       return {};
     }},
    {"wset.symdiff", "Wss", [](World& w, Operands& a) -> Result {
       w.bind(a.tok(0),
              make<Wset>(a.get<Strong<Wset>>(1)->symmetric_difference(*a.get<Strong<Wset>>(2))));
       return {};
     }},
    {"wset.le", "ss", [](World&, Operands& a) -> Result {
       return py(*a.get<Strong<Wset>>(0) <= *a.get<Strong<Wset>>(1));
     }},
    {"wset.eq", "ss", [](World&, Operands& a) -> Result {
       return py(*a.get<Strong<Wset>>(0) == *a.get<Strong<Wset>>(1));
     }},
    {"wset.disjoint", "ss", [](World&, Operands& a) -> Result {
       return py(a.get<Strong<Wset>>(0)->isdisjoint(*a.get<Strong<Wset>>(1)));
     }},

    // Collection and exit
    {"collect", "", [](World& w, Operands&) -> Result {
       w.collect();
       return {};
     }},
    {"exit", "", [](World& w, Operands&) -> Result {
       w.exit();
       return {};
     }},
};

const OpSpec* find_op(std::string_view name) noexcept {
  for (const OpSpec& op : kOps)
    if (op.name == name) return &op;
  return nullptr;
}

std::string join(const std::vector<std::string>& tokens) {
  std::string s;
  for (const std::string& t : tokens) s += (s.empty() ? "" : " ") + t;
  return s;
}

}  // namespace

std::optional<std::string_view> op_signature(std::string_view op) noexcept {
  const OpSpec* spec = find_op(op);
  if (!spec) return std::nullopt;
  return spec->signature;
}

void World::run_op(const Op& op) {
  const OpSpec& spec = *find_op(op.tokens[0]);  // parse() checked the name
  const std::string_view sig = spec.signature;
  const std::size_t n = op.tokens.size() - 1;
  // The name operand i reads, if any.
  auto read_name = [&](std::size_t i) -> std::optional<std::string> {
    const std::string& tok = op.tokens[i + 1];
    if (sig[i] == 'S') return tok.substr(0, tok.size() - 2);
    if ((sig[i] == 'O' && tok != "-") || kind_of(sig[i])) return tok;
    return std::nullopt;
  };
  // 1. Every name the op reads must be bound.
  for (std::size_t i = 0; i < n; ++i)
    if (auto name = read_name(i); name && !env_.contains(*name)) {
      emit(join(op.tokens) + " -> unbound");
      return;
    }
  // 2. The operands, of the right kinds; then the library call.
  Result result;
  {
    Operands operands(op.tokens);
    for (std::size_t i = 0; i < n; ++i) {
      std::optional<std::string> name = read_name(i);
      if (!name) {
        operands.push(std::nullopt);
        continue;
      }
      const Kind* kind = kind_of(sig[i] == 'S' || sig[i] == 'O' ? 'o' : sig[i]);
      const Value& v = env_.find(*name)->second;
      if (!kind->accepts(v)) throw ScenarioError(op.line, *name + " is not " + kind->description);
      operands.push(v);
    }
    result = spec.run(*this, operands);
  }
  if (result) emit(join(op.tokens) + " -> " + *result);
}

int World::run(const std::vector<Op>& ops, OnExit on_exit, std::ostream& err) {
  on_exit_ = on_exit;
  err_ = &err;
  for (const Op& op : ops) {
    line_ = op.line;
    try {
      run_op(op);
    } catch (const ScenarioError&) {
      throw;
    } catch (const std::exception&) {
      *err_ << "internal error: line " << op.line << ": "
            << describe_exception(std::current_exception()) << '\n';
      return 3;
    }
    if (exited_) break;
  }
  return internal_errors_ ? 3 : 0;
}

Session::Session(std::ostream* out) : world_(std::make_unique<World>(out)) {}

Session::~Session() = default;

int Session::run(const std::vector<Op>& ops, OnExit on_exit, std::ostream& err) {
  return world_->run(ops, on_exit, err);
}

long Session::live_objects() noexcept { return g_live; }

}  // namespace weakref::replay
