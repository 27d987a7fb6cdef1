// wait() and the completion queue behind as_completed(). Both register one waiter with every
// pending future; the futures notify it under their own lock (state.hpp explains why that makes
// unregistering safe), so the waiter's mutex is always taken after a state's, never before.
#include "concurrent/futures/wait.hpp"

#include <atomic>

namespace concurrent::futures::detail {

namespace {

class WaitCondition final : public Waiter {
 public:
  WaitCondition(ReturnWhen return_when, std::size_t pending)
      : return_when_(return_when), pending_(pending) {}

  void on_done(const StateBase& state) noexcept override {
    // Relaxed is enough for the counters: the Signal's mutex orders them with the waiting thread,
    // and ready() is re-checked after every wake-up.
    if (state.failed()) failed_.store(true, std::memory_order_relaxed);
    completed_.store(true, std::memory_order_relaxed);
    const std::size_t left = pending_.fetch_sub(1, std::memory_order_acq_rel) - 1;
    if (satisfied(left)) signal_.notify();
  }

  bool ready() const noexcept { return satisfied(pending_.load(std::memory_order_acquire)); }
  Signal& signal() noexcept { return signal_; }

 private:
  bool satisfied(std::size_t left) const noexcept {
    if (left == 0) return true;
    switch (return_when_) {
      case ReturnWhen::first_completed:
        return completed_.load(std::memory_order_relaxed);
      case ReturnWhen::first_exception:
        return failed_.load(std::memory_order_relaxed);
      case ReturnWhen::all_completed:
        return false;
    }
    return false;
  }

  const ReturnWhen return_when_;
  std::atomic<std::size_t> pending_;
  std::atomic<bool> completed_{false};
  std::atomic<bool> failed_{false};
  Signal signal_;
};

bool already_satisfied(const std::vector<const StateBase*>& states, ReturnWhen return_when) {
  std::size_t done = 0;
  for (const StateBase* s : states) {
    if (!s->done()) continue;
    ++done;
    if (return_when == ReturnWhen::first_completed) return true;
    if (return_when == ReturnWhen::first_exception && s->failed()) return true;
  }
  return done == states.size();
}

std::vector<bool> snapshot(const std::vector<const StateBase*>& states) {
  std::vector<bool> done(states.size());
  for (std::size_t i = 0; i < states.size(); ++i) done[i] = states[i]->done();
  return done;
}

}  // namespace

std::vector<bool> wait_states(const std::vector<const StateBase*>& states, const Deadline& deadline,
                              ReturnWhen return_when) {
  if (already_satisfied(states, return_when) || expired(deadline)) return snapshot(states);

  WaitCondition condition(return_when, states.size());
  std::vector<const StateBase*> registered;
  registered.reserve(states.size());
  for (const StateBase* s : states) {
    if (s->add_waiter(&condition)) {
      registered.push_back(s);
    } else {
      condition.on_done(*s);  // finished before we could register
    }
  }
  block_until([&] { return condition.ready(); }, deadline, condition.signal());
  for (const StateBase* s : registered) s->remove_waiter(&condition);
  return snapshot(states);
}

void CompletionQueue::on_done(const StateBase& state) noexcept { push_done(&state); }

void CompletionQueue::push_done(const StateBase* state) {
  {
    std::lock_guard lock(mu_);
    completed_.push_back(state);
  }
  signal_.notify();
}

const StateBase* CompletionQueue::pop(const Deadline& deadline) {
  auto ready = [&] {
    std::lock_guard lock(mu_);
    return !completed_.empty();
  };
  if (!block_until(ready, deadline, signal_)) return nullptr;
  std::lock_guard lock(mu_);
  const StateBase* s = completed_.front();
  completed_.pop_front();
  return s;
}

}  // namespace concurrent::futures::detail
