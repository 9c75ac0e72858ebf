// Leak forensics: most_common_types, growth, find_backref_chain, write_dot,
// find_untraced_holders.
#include <cstdio>
#include <fstream>
#include <optional>
#include <sstream>
#include <system_error>

#include "support.hpp"

namespace weakref::testing {
namespace {

struct Leaf {
  void trace(gc::Visitor&) {}
};
struct Cache {
  std::vector<Strong<Node>> items;
  void trace(gc::Visitor& v) { v(items); }
};

class ForensicsTest : public ManualCollectionTest {};

std::size_t count_of(const std::vector<gc::TypeCount>& v, const std::string& type) {
  for (auto& t : v)
    if (t.type == type) return t.count;
  return 0;
}

TEST_F(ForensicsTest, MostCommonTypes) {
  std::vector<Strong<Leaf>> leaves;
  for (int i = 0; i < 30; ++i) leaves.push_back(make<Leaf>());
  std::vector<Strong<Node>> nodes;
  for (int i = 0; i < 20; ++i) nodes.push_back(make<Node>());
  auto types = gc::most_common_types(100);
  EXPECT_EQ(count_of(types, "weakref::testing::(anonymous namespace)::Leaf"), 30U);
  EXPECT_EQ(count_of(types, "weakref::testing::Node"), 20U);
  auto top = gc::most_common_types(1);
  ASSERT_EQ(top.size(), 1U);
  EXPECT_GE(top[0].count, 30U);
  std::ostringstream out;
  gc::show_most_common_types(100, out);
  EXPECT_THAT(out.str(), ::testing::ContainsRegex("weakref::testing::Node +20\n"));
}

TEST_F(ForensicsTest, GrowthReportsIncreasesSinceLastCall) {
  gc::growth(1000);  // record the current peaks
  std::vector<Strong<Leaf>> leaves;
  for (int i = 0; i < 7; ++i) leaves.push_back(make<Leaf>());
  auto g = gc::growth(1000);
  bool found = false;
  for (auto& t : g)
    if (t.type.find("Leaf") != std::string::npos) {
      found = true;
      EXPECT_EQ(t.delta, 7U);
    }
  EXPECT_TRUE(found);
  EXPECT_TRUE(gc::growth(1000).empty());  // nothing grew since
  leaves.push_back(make<Leaf>());
  std::ostringstream out;
  gc::show_growth(10, out);
  EXPECT_THAT(out.str(), ::testing::ContainsRegex("Leaf +[0-9]+  \\+1\n"));
}

TEST_F(ForensicsTest, BackrefChainLeadsToTheRoot) {
  // root (held by a local) -> cache -> middle -> leaked
  Strong<Cache> cache = make<Cache>();
  Strong<Node> middle = make<Node>("middle");
  Strong<Node> leaked = make<Node>("leaked");
  middle->a = leaked;
  cache->items.push_back(middle);
  middle.reset();
  auto chain = gc::find_backref_chain(leaked);
  ASSERT_EQ(chain.size(), 3U);
  EXPECT_TRUE(chain[0] == cache);
  EXPECT_EQ(exact_pointer_cast<Node>(chain[1])->label, "middle");
  EXPECT_TRUE(chain[2] == leaked);
  chain.clear();                     // (its references are outside references too)
  EXPECT_TRUE(gc::is_root(cache));   // the local `cache`
  EXPECT_TRUE(gc::is_root(leaked));  // the local `leaked`
  Node* raw = leaked.get();
  leaked.reset();
  Strong<Node> again = self(raw);  // one outside handle: ours
  EXPECT_TRUE(gc::is_root(again));
  EXPECT_EQ(gc::find_backref_chain(again).size(), 3U);  // not a root of itself
}

TEST_F(ForensicsTest, BackrefChainWithPredicateAndDepth) {
  Strong<Node> a = make<Node>("a");
  a->a = make<Node>("b");
  a->a->a = make<Node>("c");
  Strong<Node> c = a->a->a;
  auto is_a = [](const Strong<void>& o) {
    auto n = exact_pointer_cast<Node>(o);
    return n && n->label == "a";
  };
  EXPECT_EQ(gc::find_backref_chain(c, is_a).size(), 3U);
  EXPECT_TRUE(gc::find_backref_chain(c, is_a, 1).empty());  // too deep
}

TEST_F(ForensicsTest, DotExportDrawsStrongAndWeakEdges) {
  Strong<Node> a = make<Node>("a");
  a->a = make<Node>("b");
  a->wa = ref<Node>(a->a);
  std::ostringstream dot;
  gc::write_dot(dot, a);
  const std::string s = dot.str();
  EXPECT_THAT(s, ::testing::StartsWith("digraph ObjectGraph {"));
  EXPECT_THAT(s, ::testing::HasSubstr("n0 -> n1;"));
  EXPECT_THAT(s, ::testing::HasSubstr("n0 -> n1 [style=dashed, label=\"weak\"];"));
  EXPECT_THAT(s, ::testing::ContainsRegex(
                     "n0 \\[label=\"weakref::testing::Node\\\\n0x[0-9a-f]+\\\\nstrong 1\""));
  std::ostringstream back;
  gc::write_dot(back, a->a, {.max_depth = 2, .backrefs = true});
  EXPECT_THAT(back.str(), ::testing::HasSubstr("n1 -> n0;"));  // a refers to b
}

TEST_F(ForensicsTest, DotLabelsCarryExtraInfoAndMayOmitAddresses) {
  Strong<Node> a = make<Node>("a");
  a->a = make<Node>("b \"quoted\"");
  gc::DotOptions options;
  options.show_addresses = false;
  options.extra_info = [](const Strong<void>& o) {
    // the label of a Node (every object of this graph is one)
    return static_pointer_cast<Node>(o)->label;
  };
  std::ostringstream dot;
  gc::write_dot(dot, a, options);
  const std::string s = dot.str();
  EXPECT_THAT(s, ::testing::HasSubstr("n0 [label=\"weakref::testing::Node\\nstrong 1\\na\""));
  EXPECT_THAT(s, ::testing::HasSubstr("\\nb \\\"quoted\\\"\""));  // escaped for DOT
  EXPECT_THAT(s, ::testing::Not(::testing::HasSubstr("0x")));
}

TEST_F(ForensicsTest, DotExportToAFile) {
  Strong<Node> a = make<Node>("a");
  const std::string path = ::testing::TempDir() + "weakref_forensics_test.dot";
  gc::write_dot(path, a);
  std::ifstream in(path);
  std::stringstream content;
  content << in.rdbuf();
  EXPECT_THAT(content.str(), ::testing::StartsWith("digraph ObjectGraph {"));
  std::remove(path.c_str());
  EXPECT_THROW(gc::write_dot("/nonexistent-dir/x.dot", a), std::system_error);
}

// A class with Strong<> members and no trace(): invisible to the collector.
class Holder {
 public:
  Holder() = default;
  Strong<Node> node;
  Strong<Holder> other;
  std::optional<Strong<Node>> maybe;
  int filler[3] = {1, 2, 3};
};
class Harmless {  // untraced, holds no references
 public:
  Harmless() = default;
  int value = 7;
  std::string text = "no references here";
};
struct Plainly {  // an aggregate: traced automatically, never reported
  Strong<Node> node;
};

class UntracedTest : public ForensicsTest {
 protected:
  void TearDown() override {
    gc::track_untraced(false);
    ForensicsTest::TearDown();
  }
};

TEST_F(UntracedTest, FindsUntracedTypesHoldingStrongReferences) {
  gc::track_untraced(true);
  Strong<Node> n = make<Node>("n");
  Strong<Holder> a = make<Holder>();
  Strong<Holder> b = make<Holder>();
  Strong<Harmless> harmless = make<Harmless>();
  Strong<Plainly> plain = make<Plainly>();
  plain->node = n;
  a->node = n;
  a->other = b;  // an untraced referent
  b->other = a;  // the cycle the collector cannot see
  ref<Node> r(n);
  b->maybe = r();  // made by a weak lock: the count is at the side table
  std::vector<gc::UntracedHolder> holders = gc::find_untraced_holders();
  ASSERT_EQ(holders.size(), 1U);
  EXPECT_THAT(holders[0].type, ::testing::HasSubstr("Holder"));
  EXPECT_EQ(holders[0].objects, 2U);
  EXPECT_EQ(holders[0].references, 4U);
  ASSERT_EQ(holders[0].referents.size(), 2U);
  EXPECT_THAT(holders[0].referents, ::testing::Contains(::testing::HasSubstr("Holder")));
  EXPECT_THAT(holders[0].referents, ::testing::Contains("weakref::testing::Node"));
  EXPECT_TRUE(holders[0].example == a || holders[0].example == b);
  std::ostringstream out;
  gc::show_untraced_holders(out);
  EXPECT_THAT(out.str(), ::testing::MatchesRegex(".*Holder +objects 2 +references 4 +-> .*\n"));
  holders.clear();
  a->other.reset();  // break the cycle by hand
}

TEST_F(UntracedTest, DeadObjectsAreForgottenAndUntrackedOnesUnknown) {
  Strong<Node> n = make<Node>("n");
  Strong<Holder> before = make<Holder>();  // made while tracking is off
  before->node = n;
  gc::track_untraced(true);
  {
    Strong<Holder> dead = make<Holder>();
    dead->node = n;
  }
  EXPECT_TRUE(gc::find_untraced_holders().empty());
  Strong<Holder> after = make<Holder>();
  after->node = n;
  gc::track_untraced(false);  // remembered objects stay known until they die
  EXPECT_EQ(gc::find_untraced_holders().size(), 1U);
  after.reset();
  EXPECT_TRUE(gc::find_untraced_holders().empty());
}

}  // namespace
}  // namespace weakref::testing
