// SHA-256 against the FIPS 180-4 / NIST example digests and against coreutils' sha256sum on a
// real data file, across block boundaries and chunked updates.
#include "core/sha256.h"

#include <gtest/gtest.h>

#include "core/atomic_file.h"
#include "core/error.h"
#include "test_util.h"

namespace metamath {
namespace {

TEST(Sha256, NistExamples) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, ChunkedUpdatesEqualOneUpdate) {
  std::string text;
  for (int i = 0; i < 300; ++i) text += static_cast<char>('a' + i * 7 % 26);
  const std::string whole = sha256_hex(text);
  for (std::size_t chunk : {1u, 3u, 55u, 56u, 63u, 64u, 65u, 129u}) {
    Sha256 h;
    for (std::size_t i = 0; i < text.size(); i += chunk) h.update(text.substr(i, chunk));
    EXPECT_EQ(h.hex_digest(), whole) << "chunk " << chunk;
  }
  // Every length around the padding boundary (55, 56, 64 bytes need one or two final blocks).
  for (std::size_t n = 50; n < 70; ++n) {
    Sha256 h;
    h.update(text.substr(0, n / 2));
    h.update(text.substr(n / 2, n - n / 2));
    EXPECT_EQ(h.hex_digest(), sha256_hex(text.substr(0, n))) << n;
  }
}

TEST(Sha256, FileMatchesCoreutils) {
  METAMATH_REQUIRE_DATA(data);
  const auto file = data / "gsm8k" / "test.jsonl";
  auto r = testing::run_command("sha256sum " + file.string());
  METAMATH_REQUIRE(r.code == 0, "sha256sum not available: " << r.output);
  EXPECT_EQ(sha256_file(file), r.output.substr(0, 64));
  EXPECT_NE(testing::error_of([] { sha256_file("/nonexistent/x.jsonl"); }).find("/nonexistent/x"),
            std::string::npos);
}

}  // namespace
}  // namespace metamath
