// Pattern parsing/validation (messages name the pattern and what was expected) and geometry.
#include <gtest/gtest.h>

#include <string>

#include "slidesparse/pattern.h"

using namespace slidesparse;

TEST(Pattern, ParsesTheSlidingFamilyAndSparserPatterns) {
  for (const char* s :
       {"2:4", "4:6", "6:8", "8:10", "10:12", "12:14", "14:16", "5:8", "1:4", "1:16"}) {
    auto p = Pattern::parse(s);
    ASSERT_TRUE(p.ok()) << s << ": " << p.status().message();
    EXPECT_EQ(p->str(), s);
    EXPECT_TRUE(Pattern::validate(p->n, p->m).ok());
  }
}

TEST(Pattern, RejectsInvalidWithClearOneLineMessages) {
  const std::pair<const char*, const char*> cases[] = {
      {"7:8", "n must be <= m-2"}, {"8:8", "n must be <= m-2"},      {"3:4", "n must be <= m-2"},
      {"2:3", "m must be even"},   {"1:17", "m must be even"},       {"0:4", "n must be >= 1"},
      {"2:18", "m must be <= 16"}, {"1000:1002", "m must be <= 16"}, {"1:2", "m must be >= 4"},
      {"0:0", "n must be >= 1"},
  };
  for (auto [text, want] : cases) {
    auto p = Pattern::parse(text);
    ASSERT_FALSE(p.ok()) << text;
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    const std::string& msg = p.status().message();
    EXPECT_NE(msg.find(want), std::string::npos) << text << ": " << msg;
    EXPECT_NE(msg.find(std::string("\"") + text + "\""), std::string::npos) << msg;
    EXPECT_EQ(msg.find('\n'), std::string::npos);
  }
  EXPECT_FALSE(Pattern::validate(7, 8).ok());
  EXPECT_NE(Pattern::validate(7, 8).message().find("7:8"), std::string::npos);
}

TEST(Pattern, RejectsGarbage) {
  for (const char* text : {"", "6", "6:", ":8", "a:b", "6:8x", " 6:8", "6:8 ", "6 :8", "6:8:2",
                           "-2:4", "+6:8", "6/8", "2_8", "0006:8", "6:0008", "6.0:8", "６:8"}) {
    auto p = Pattern::parse(text);
    ASSERT_FALSE(p.ok()) << "'" << text << "'";
    EXPECT_EQ(p.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(p.status().message().find('\n'), std::string::npos);
  }
}

TEST(Pattern, Geometry) {
  struct Case {
    const char* s;
    double gamma;
    int lifted_block;
  } cases[] = {{"2:4", 1.0, 4},       {"4:6", 4.0 / 3, 8}, {"6:8", 1.5, 12},
               {"8:10", 8.0 / 5, 16}, {"14:16", 1.75, 28}, {"5:8", 1.5, 12}};
  for (auto c : cases) {
    Pattern p = *Pattern::parse(c.s);
    EXPECT_DOUBLE_EQ(p.gamma(), c.gamma) << c.s;
    EXPECT_EQ(p.lifted_block(), c.lifted_block) << c.s;
    EXPECT_EQ(p.windows() * 4, c.lifted_block);
  }
  Pattern p = *Pattern::parse("6:8");
  EXPECT_EQ(p.blocks(0), 0);
  EXPECT_EQ(p.blocks(8), 1);
  EXPECT_EQ(p.blocks(9), 2);
  EXPECT_EQ(p.k_pad(2048), 2048);
  EXPECT_EQ(p.k_pad(2049), 2056);
  EXPECT_EQ(p.k_lifted(2048), 3072);  // 1.5 K
  EXPECT_EQ(p.k_lifted(13), 24);
  EXPECT_EQ(p.k_lifted_aligned(13, 32), 32);
  EXPECT_EQ(p.k_lifted_aligned(2048, 32), 3072);
  Pattern q = *Pattern::parse("4:6");
  EXPECT_EQ(q.k_lifted(18944), 18944 / 6 * 8 + 8);  // 18944 = 6*3157 + 2: one padded block
  EXPECT_EQ(q.k_lifted_aligned(18944, 16) % 16, 0);
}
