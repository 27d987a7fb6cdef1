// codec::keep_received_mappings and keepers (detail/codec.hpp): a receiver that keeps the mappings
// of the segments it was sent reads a segment sent again through the mapping it has, keeps at most
// kKeptReceivedMappings unused ones, remaps one too short for a grown segment, lets one go once its
// sender dropped the segment, and a keeper's mappings go when it forgets them. Its own binary: the
// process-wide setting is on in worker processes only (the parent's mappings are counted by other
// tests).
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include <concurrent/futures.hpp>
#include <concurrent/futures/detail/codec.hpp>

namespace {

namespace codec = concurrent::futures::detail::codec;

codec::Buffer encode(const std::string& value) {
  codec::Buffer buffer;
  codec::Writer w(buffer);
  codec::write(w, value);
  return buffer;
}

std::string decode(const codec::Buffer& buffer) {
  codec::Reader r(buffer.data(), buffer.size());
  std::string value;
  codec::read(r, value);
  return value;
}

ino_t inode_of(int fd) {
  struct stat st {};
  EXPECT_EQ(fstat(fd, &st), 0);
  return st.st_ino;
}

// How many mappings of this process are of the payload memfd with `inode` (/proc/self/maps: the
// fifth field, and the path).
int mappings_of(ino_t inode) {
  std::ifstream maps("/proc/self/maps");
  int count = 0;
  for (std::string line; std::getline(maps, line);) {
    std::istringstream fields(line);
    std::string range, perms, offset, device;
    unsigned long long ino = 0;
    fields >> range >> perms >> offset >> device >> ino;
    const bool payload = line.find("memfd:cfutures-payload") != std::string::npos;
    count += payload && ino == inode ? 1 : 0;
  }
  return count;
}

// What a receiving process does with a payload: the descriptor it was sent, mapped.
codec::Buffer receive(const codec::Buffer& sent) {
  return codec::Buffer::map_shared(sent.share(), sent.size());
}

constexpr std::size_t kLarge = std::size_t{1} << 20;  // above kSharedThreshold: a segment

class ReceivedMappingsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() { codec::keep_received_mappings(); }
  void SetUp() override {
    // Segments dropped by their sender: kept mappings of them are let go at the next receive.
    codec::release_idle_segments();
    const std::string warm(kLarge, '.');
    codec::Buffer sent = encode(warm);
    codec::Buffer got = receive(sent);
    got = codec::Buffer();
    sent = codec::Buffer();
    codec::release_idle_segments();
  }
};

TEST_F(ReceivedMappingsTest, ASegmentSentAgainIsReadThroughTheMappingKept) {
  const std::string first(kLarge, 'a');
  const std::string second(kLarge, 'b');
  codec::Buffer sent = encode(first);
  ASSERT_TRUE(sent.shared());
  const ino_t inode = inode_of(sent.fd());
  const std::byte* where = nullptr;
  {
    const codec::Buffer got = receive(sent);
    EXPECT_EQ(decode(got), first);
    where = got.data();
  }
  // The sender's mapping, and the receiver's, kept though its Buffer is gone (two lines in
  // /proc/self/maps: its control page is writable, its payload read-only).
  EXPECT_EQ(mappings_of(inode), 3);
  sent = codec::Buffer();  // the segment goes to the sender's pool, still mapped there
  sent = encode(second);   // ... and is reused for the next payload
  ASSERT_EQ(inode_of(sent.fd()), inode) << "the sender did not reuse its segment";
  const codec::Buffer got = receive(sent);
  EXPECT_EQ(got.data(), where) << "the segment was mapped afresh";
  EXPECT_EQ(decode(got), second) << "the kept mapping shows the new payload";
}

TEST_F(ReceivedMappingsTest, AtMostKKeptUnusedMappingsAreKept) {
  // One sender more than are kept, all at once: as many segments.
  std::vector<codec::Buffer> sent;
  for (std::size_t i = 0; i <= codec::kKeptReceivedMappings; ++i) {
    sent.push_back(encode(std::string(kLarge, static_cast<char>('a' + i))));
  }
  {
    std::vector<codec::Buffer> got;
    for (const codec::Buffer& s : sent) got.push_back(receive(s));
    EXPECT_EQ(codec::kept_received_mappings(), sent.size());  // all in use
    EXPECT_EQ(decode(got.back()), std::string(kLarge, static_cast<char>('a' + sent.size() - 1)));
  }
  EXPECT_EQ(codec::kept_received_mappings(), codec::kKeptReceivedMappings);
}

// A keeper's own mappings: not shared with another keeper, and gone when it forgets them (one in
// use at that moment when its Buffer is done), the sender's own mapping untouched.
TEST_F(ReceivedMappingsTest, AKeepersMappingsGoWhenItForgetsThemThoseInUseWhenDone) {
  const int keeper = 0;
  const int other_keeper = 0;
  codec::Buffer sent = encode(std::string(kLarge, 'k'));
  const ino_t inode = inode_of(sent.fd());
  const std::byte* where = nullptr;
  {
    const codec::Buffer got = codec::Buffer::map_shared(sent.share(), sent.size(), &keeper);
    where = got.data();
  }
  EXPECT_EQ(mappings_of(inode), 3) << "the sender's mapping and the keeper's (two lines)";
  {
    const codec::Buffer mine = codec::Buffer::map_shared(sent.share(), sent.size(), &keeper);
    EXPECT_EQ(mine.data(), where) << "the keeper's mapping was not reused";
    const codec::Buffer theirs =
        codec::Buffer::map_shared(sent.share(), sent.size(), &other_keeper);
    EXPECT_NE(theirs.data(), where) << "another keeper was given this keeper's mapping";
    EXPECT_EQ(decode(theirs), std::string(kLarge, 'k'));
    codec::forget_received_mappings(&keeper);
    EXPECT_EQ(decode(mine), std::string(kLarge, 'k')) << "a mapping in use was unmapped";
    codec::forget_received_mappings(&other_keeper);
  }
  EXPECT_EQ(mappings_of(inode), 1) << "a forgotten keeper's mapping outlived its Buffer";
  EXPECT_EQ(codec::kept_received_mappings(), 0u);
}

TEST_F(ReceivedMappingsTest, AMappingTooShortForTheGrownSegmentIsReplaced) {
  codec::Buffer sent = encode(std::string(kLarge, 's'));
  const ino_t inode = inode_of(sent.fd());
  { EXPECT_EQ(decode(receive(sent)), std::string(kLarge, 's')); }
  sent = codec::Buffer();
  const std::string bigger(4 * kLarge, 'L');
  sent = encode(bigger);  // the pool's only free segment, grown
  ASSERT_EQ(inode_of(sent.fd()), inode);
  const codec::Buffer got = receive(sent);
  EXPECT_EQ(decode(got), bigger);
  EXPECT_EQ(codec::kept_received_mappings(), 1u) << "the short mapping was not let go";
}

TEST_F(ReceivedMappingsTest, AMappingIsLetGoOnceItsSenderDroppedTheSegment) {
  codec::Buffer sent = encode(std::string(kLarge, 'd'));
  { EXPECT_EQ(decode(receive(sent)), std::string(kLarge, 'd')); }
  EXPECT_EQ(codec::kept_received_mappings(), 1u);
  sent = codec::Buffer();
  codec::release_idle_segments();  // the sender drops its segment
  // The next receive (of another segment) forgets the mapping of the dropped one.
  const codec::Buffer other = encode(std::string(kLarge, 'o'));
  const codec::Buffer got = receive(other);
  EXPECT_EQ(codec::kept_received_mappings(), 1u);
  EXPECT_EQ(decode(got), std::string(kLarge, 'o'));
}

// The control page's second word, the sender's "dropped" mark (src/remote/codec.cpp).
std::uint32_t dropped_mark(const codec::Buffer& sent) {
  const std::byte* control = sent.data() - codec::kSegmentControlBytes;
  std::uint32_t mark = 0;
  std::memcpy(&mark, control + sizeof(std::uint32_t), sizeof mark);
  return mark;
}

TEST_F(ReceivedMappingsTest, AForkChildDoesNotMarkItsParentsSegmentsDropped) {
  codec::Buffer sent = encode(std::string(kLarge, 'f'));
  const ino_t inode = inode_of(sent.fd());
  { EXPECT_EQ(decode(receive(sent)), std::string(kLarge, 'f')); }
  sent = codec::Buffer();  // idle in this process's pool, which a fork child lets go of
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(0);
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  sent = encode(std::string(kLarge, 'g'));
  ASSERT_EQ(inode_of(sent.fd()), inode);
  EXPECT_EQ(dropped_mark(sent), 0u) << "the child's exit marked the parent's segment dropped";
  EXPECT_EQ(decode(receive(sent)), std::string(kLarge, 'g'));
}

}  // namespace
