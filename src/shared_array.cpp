// The mapping behind cf::SharedArray (shared_array.hpp).
#include "concurrent/futures/shared_array.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>
#include <system_error>

#include "system.hpp"

namespace concurrent::futures::detail {

std::shared_ptr<SharedRegion> SharedRegion::create(std::size_t bytes) {
  UniqueFd fd(memfd_create("cfutures-shared-array", MFD_CLOEXEC));
  if (!fd) throw_errno("memfd_create of a shared array");
  if (ftruncate(fd.get(), static_cast<off_t>(bytes)) != 0)
    throw_errno("ftruncate of a shared array");
  // Not populated: the pages come as they are first touched, where they are used.
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd.get(), 0);
  if (p == MAP_FAILED) throw_errno("mmap of a shared array");
  return std::shared_ptr<SharedRegion>(new SharedRegion(fd.release(), p, bytes));
}

std::shared_ptr<SharedRegion> SharedRegion::map(int fd, std::size_t bytes) {
  struct stat st {};
  if (fstat(fd, &st) != 0) throw_errno("fstat of a shared array");
  if (st.st_size < 0 || static_cast<std::uint64_t>(st.st_size) < bytes) {
    throw SerializationError("corrupt message: a shared array's memory is " +
                             std::to_string(st.st_size) + " bytes, not " + std::to_string(bytes));
  }
  UniqueFd own(fcntl(fd, F_DUPFD_CLOEXEC, 0));
  if (!own) throw_errno("dup of a shared array's descriptor");
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, own.get(), 0);
  if (p == MAP_FAILED) throw_errno("mmap of a shared array");
  return std::shared_ptr<SharedRegion>(new SharedRegion(own.release(), p, bytes));
}

SharedRegion::~SharedRegion() {
  munmap(data_, bytes_);
  close(fd_);
}

}  // namespace concurrent::futures::detail
