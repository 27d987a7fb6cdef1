// The link through which work that outlives an executor reaches it (see detail/executor_link.hpp).
#include "concurrent/futures/executor.hpp"

#include "concurrent/futures/detail/executor_link.hpp"

namespace concurrent::futures::detail {

void ExecutorLink::schedule(TaskPtr task) {
  std::lock_guard lock(mu_);
  if (executor_ == nullptr) throw ShutdownError();
  executor_->schedule(std::move(task));
}

bool ExecutorLink::in_process() {
  std::lock_guard lock(mu_);
  return executor_ == nullptr || executor_->in_process();
}

std::size_t ExecutorLink::max_workers() {
  std::lock_guard lock(mu_);
  return executor_ != nullptr ? executor_->max_workers() : 1;
}

}  // namespace concurrent::futures::detail
