// ProcessPoolExecutor: the remote-execution core (remote/dispatcher.hpp) over the process
// transport (process/process_transport.hpp). What is left here is the options' checks.
#include "concurrent/futures/process_pool.hpp"

#include <unistd.h>

#include <cstdio>
#include <stdexcept>

#include "process/launcher.hpp"
#include "process/process_transport.hpp"
#include "remote/dispatcher.hpp"
#include "system.hpp"

namespace concurrent::futures {

class ProcessPoolExecutor::Impl {
 public:
  explicit Impl(const ProcessPoolOptions& options)
      : max_workers_(options.max_workers.value_or(detail::usable_cpus())) {
    if (max_workers_ == 0) throw std::invalid_argument("max_workers must be greater than 0");
    if (options.start_method == StartMethod::fork && options.max_tasks_per_child != 0) {
      throw std::invalid_argument(
          "max_tasks_per_child is incompatible with the 'fork' start method; use forkserver or "
          "spawn");
    }
    if (detail::process::is_spawned_worker()) {
      // This program was started as a spawn worker but went on into main: it never called
      // serve_if_worker. Stop before it starts pools of its own; the parent explains why.
      std::fprintf(stderr,
                   "cfutures: a spawned worker process reached a ProcessPoolExecutor: call "
                   "cf::serve_if_worker(argc, argv) first thing in main\n");
      std::fflush(stderr);
      _exit(detail::process::kMissingServeExitCode);
    }
    auto transport = std::make_unique<detail::process::ProcessTransport>(options.start_method);
    transport_ = transport.get();
    dispatcher_ = std::make_unique<detail::remote::Dispatcher>(
        detail::remote::DispatcherOptions{
            .max_workers = max_workers_,
            .max_tasks_per_child = options.max_tasks_per_child,
            .task_timeout = options.task_timeout,
            .on_worker_crash = options.on_worker_crash,
            .start_all_at_once = options.start_method == StartMethod::fork,
            .config = {.max_tasks_per_child = options.max_tasks_per_child,
                       .initializer = options.initializer},
        },
        std::move(transport));
  }

  const std::size_t max_workers_;
  detail::process::ProcessTransport* transport_ = nullptr;  // owned by the dispatcher
  std::unique_ptr<detail::remote::Dispatcher> dispatcher_;
};

ProcessPoolExecutor::ProcessPoolExecutor() : ProcessPoolExecutor(ProcessPoolOptions{}) {}

ProcessPoolExecutor::ProcessPoolExecutor(std::size_t max_workers)
    : ProcessPoolExecutor(ProcessPoolOptions{.max_workers = max_workers}) {}

ProcessPoolExecutor::ProcessPoolExecutor(ProcessPoolOptions options)
    : impl_(std::make_unique<Impl>(options)) {}

ProcessPoolExecutor::~ProcessPoolExecutor() {
  disconnect();
  impl_.reset();
}

void ProcessPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  impl_->dispatcher_->shutdown(wait, cancel_futures);
}

std::size_t ProcessPoolExecutor::max_workers() const { return impl_->max_workers_; }

void ProcessPoolExecutor::terminate_workers() {
  impl_->dispatcher_->terminate(detail::remote::StopSignal::terminate);
}

void ProcessPoolExecutor::kill_workers() {
  impl_->dispatcher_->terminate(detail::remote::StopSignal::kill);
}

std::vector<int> ProcessPoolExecutor::worker_pids() const {
  return impl_->dispatcher_->worker_pids();
}

int ProcessPoolExecutor::forkserver_pid() const { return impl_->transport_->forkserver_pid(); }

void ProcessPoolExecutor::schedule(detail::TaskPtr task) {
  impl_->dispatcher_->submit(std::move(task));
}

void ProcessPoolExecutor::check_open() const { impl_->dispatcher_->check_open(); }

void ProcessPoolExecutor::schedule_remote(detail::RemoteCallPtr call,
                                          detail::codec::Buffer request) {
  impl_->dispatcher_->submit(std::move(call), std::move(request));
}

}  // namespace concurrent::futures
