// Shared test fixtures: a traced Node with three slots (like the conformance
// scenarios' objects), an untraced Plain type, a live-object counter, and a
// guard that captures the unraisable hook.
#pragma once

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <atomic>
#include <sstream>
#include <string>
#include <variant>
#include <vector>
#include <weakref/weakref.hpp>

namespace weakref::testing {

inline std::atomic<long> g_live{0};

// A traced object: slots hold strong or weak references.
struct Node {
  std::string label;
  Strong<Node> a, b, c;
  ref<Node> wa;
  explicit Node(std::string l = "") : label(std::move(l)) { ++g_live; }
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;
  ~Node() {
    // Slots are released a, b, c (as the scenarios' objects do).
    a.reset();
    b.reset();
    c.reset();
    --g_live;
  }
  std::string name() const { return label; }
  int add(int x, int y) { return x + y; }
  void trace(gc::Visitor& v) { v(a, b, c, wa); }
};

// An untraced object (no trace(): the collector does not see it).
struct Plain {
  int value = 0;
  Strong<Plain> next;
  Plain() { ++g_live; }
  explicit Plain(int v) : value(v) { ++g_live; }
  ~Plain() { --g_live; }
};

// Records what reaches the unraisable hook while alive.
class UnraisableCapture {
 public:
  UnraisableCapture() {
    previous_ = set_unraisable_hook([this](const UnraisableInfo& info) {
      messages.push_back(describe_exception(info.exception));
      objects.push_back(info.object);
    });
  }
  ~UnraisableCapture() { set_unraisable_hook(previous_); }
  UnraisableCapture(const UnraisableCapture&) = delete;
  UnraisableCapture& operator=(const UnraisableCapture&) = delete;
  std::vector<std::string> messages;
  std::vector<std::string> objects;

 private:
  UnraisableHook previous_;
};

// Every test starts and ends with no live Node/Plain and no pending garbage.
class Test : public ::testing::Test {
 protected:
  void SetUp() override {
    gc::collect();
    live_at_start_ = g_live.load();
  }
  void TearDown() override {
    gc::collect();
    EXPECT_EQ(g_live.load(), live_at_start_) << "objects leaked by the test";
  }

 private:
  long live_at_start_ = 0;
};

// A Test with the automatic collections off: the only collections are the
// test's own (and Test's, around it).
class ManualCollectionTest : public Test {
 protected:
  void SetUp() override {
    gc::disable();
    Test::SetUp();
  }
  void TearDown() override {
    Test::TearDown();
    gc::enable();
  }
};

}  // namespace weakref::testing
