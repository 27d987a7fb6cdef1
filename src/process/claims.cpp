#include "process/claims.hpp"

#include <sys/mman.h>
#include <unistd.h>

#include <new>
#include <system_error>
#include <utility>

namespace concurrent::futures::detail::process {

namespace {

using Word = std::atomic<std::uint64_t>;
static_assert(Word::is_always_lock_free, "the claim word must be lock-free to be shared");

constexpr std::size_t kPage = 4096;

Word* map_word(int fd) {
  void* p = mmap(nullptr, kPage, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  if (p == MAP_FAILED) throw_errno("mmap of a claim word");
  return static_cast<Word*>(p);
}

}  // namespace

ClaimWord ClaimWord::create() {
  UniqueFd fd(memfd_create("cfutures-claims", MFD_CLOEXEC));
  if (!fd) throw_errno("memfd_create");
  if (ftruncate(fd.get(), static_cast<off_t>(kPage)) != 0) throw_errno("ftruncate");
  Word* word = new (map_word(fd.get())) Word(0);
  return ClaimWord(std::move(fd), word);
}

ClaimWord ClaimWord::adopt(UniqueFd fd) {
  Word* word = map_word(fd.get());
  return ClaimWord(UniqueFd(), word);  // the mapping is all a worker needs: `fd` closes here
}

ClaimWord::ClaimWord(ClaimWord&& other) noexcept
    : fd_(std::move(other.fd_)), word_(std::exchange(other.word_, nullptr)) {}

ClaimWord& ClaimWord::operator=(ClaimWord&& other) noexcept {
  if (this != &other) {
    if (word_ != nullptr) munmap(word_, kPage);
    fd_ = std::move(other.fd_);
    word_ = std::exchange(other.word_, nullptr);
  }
  return *this;
}

ClaimWord::~ClaimWord() {
  if (word_ != nullptr) munmap(word_, kPage);
}

bool ClaimWord::claim(std::uint8_t generation) noexcept {
  std::uint64_t now = word_->load(std::memory_order_acquire);
  for (;;) {
    if (static_cast<std::uint8_t>(now >> 32) != generation) return false;
    // The count wraps within its own 32 bits, never into the generation.
    const std::uint64_t next =
        (now & ~std::uint64_t{0xffffffffU}) | static_cast<std::uint32_t>(now + 1);
    if (word_->compare_exchange_weak(now, next, std::memory_order_acq_rel)) return true;
  }
}

std::uint8_t ClaimWord::generation() const noexcept {
  return static_cast<std::uint8_t>(word_->load(std::memory_order_acquire) >> 32);
}

std::uint32_t ClaimWord::started() const noexcept {
  return static_cast<std::uint32_t>(word_->load(std::memory_order_acquire));
}

std::uint32_t ClaimWord::take_back() noexcept {
  std::uint64_t now = word_->load(std::memory_order_acquire);
  for (;;) {
    const std::uint64_t next = ((now >> 32) + 1) << 32 | (now & 0xffffffffU);
    if (word_->compare_exchange_weak(now, next, std::memory_order_acq_rel)) {
      return static_cast<std::uint32_t>(now);
    }
  }
}

}  // namespace concurrent::futures::detail::process
