// MPIPoolExecutor: the remote-execution core (remote/dispatcher.hpp) over the MPI transport.
#include <stdexcept>

#include "concurrent/futures/mpi.hpp"
#include "mpi/mpi_transport.hpp"
#include "mpi/ranks.hpp"
#include "remote/dispatcher.hpp"
#include "system.hpp"

namespace concurrent::futures {

class MPIPoolExecutor::Impl {
 public:
  Impl() = default;  // a rank that served an MPICommExecutor's root: shut down
  Impl(std::unique_ptr<detail::mpi::Ranks> ranks, std::size_t workers, void (*initializer)())
      : max_workers_(workers) {
    dispatcher_ = std::make_unique<detail::remote::Dispatcher>(
        detail::remote::DispatcherOptions{
            .kind = detail::remote::PoolKind::mpi_ranks,
            .max_workers = workers,
            .max_tasks_per_child = 0,
            .task_timeout = std::nullopt,
            .on_worker_crash = CrashPolicy::break_pool,
            .start_all_at_once = true,
            .config = {.max_tasks_per_child = 0, .initializer = initializer},
        },
        std::make_unique<detail::mpi::MpiTransport>(std::move(ranks)));
  }

  std::size_t max_workers_ = 0;
  std::unique_ptr<detail::remote::Dispatcher> dispatcher_;
};

namespace {

std::unique_ptr<detail::mpi::Ranks> choose_ranks(const MPIPoolOptions& options,
                                                 std::size_t* workers) {
  detail::mpi::serve_or_return(nullptr, nullptr);  // worker ranks serve here and never return
  if (options.max_workers && *options.max_workers == 0) {
    throw std::invalid_argument("max_workers must be greater than 0");
  }
  if (detail::mpi::world_size() > 1) {
    auto ranks = detail::mpi::lease_static(options.max_workers.value_or(0));
    *workers = ranks->members().size();
    return ranks;
  }
  *workers = options.max_workers.value_or(detail::usable_cpus());
  return detail::mpi::spawn(*workers);
}

}  // namespace

MPIPoolExecutor::MPIPoolExecutor() : MPIPoolExecutor(MPIPoolOptions{}) {}

MPIPoolExecutor::MPIPoolExecutor(std::size_t max_workers)
    : MPIPoolExecutor(MPIPoolOptions{.max_workers = max_workers}) {}

MPIPoolExecutor::MPIPoolExecutor(MPIPoolOptions options) {
  std::size_t workers = 0;
  auto ranks = choose_ranks(options, &workers);
  impl_ = std::make_unique<Impl>(std::move(ranks), workers, options.initializer);
}

MPIPoolExecutor::MPIPoolExecutor(MPI_Comm comm, int root, OverComm) {
  auto ranks = detail::mpi::comm_ranks(comm, root);
  if (!ranks) {
    impl_ = std::make_unique<Impl>();
    return;
  }
  const std::size_t workers = ranks->members().size();
  if (workers == 0) {
    throw std::invalid_argument("an MPICommExecutor needs a communicator of 2 ranks or more");
  }
  impl_ = std::make_unique<Impl>(std::move(ranks), workers, nullptr);
}

MPIPoolExecutor::~MPIPoolExecutor() {
  disconnect();
  impl_.reset();
}

void MPIPoolExecutor::shutdown(bool wait, bool cancel_futures) {
  if (impl_->dispatcher_) impl_->dispatcher_->shutdown(wait, cancel_futures);
}

std::size_t MPIPoolExecutor::max_workers() const { return impl_->max_workers_; }

std::vector<int> MPIPoolExecutor::worker_ranks() const {
  if (!impl_->dispatcher_) return {};
  return impl_->dispatcher_->worker_pids();
}

void MPIPoolExecutor::schedule(detail::TaskPtr task) {
  check_open();
  impl_->dispatcher_->submit(std::move(task));
}

void MPIPoolExecutor::check_open() const {
  if (!impl_->dispatcher_) {
    throw ShutdownError(
        "this rank is not the root of its MPICommExecutor: it served the root's pool, which has "
        "shut down");
  }
  impl_->dispatcher_->check_open();
}

void MPIPoolExecutor::schedule_remote(detail::RemoteCallPtr call, detail::codec::Buffer request) {
  check_open();
  impl_->dispatcher_->submit(std::move(call), std::move(request));
}

MPICommExecutor::MPICommExecutor(MPI_Comm comm, int root)
    : MPIPoolExecutor(comm, root, OverComm{}) {
  root_ = max_workers() > 0;
}

void mpi::serve_if_worker(int argc, char** argv) { detail::mpi::serve_or_return(&argc, &argv); }

}  // namespace concurrent::futures
