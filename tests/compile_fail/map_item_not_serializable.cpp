// expect-error: (T = Job]|always_false_v<Job>').*this type cannot be sent to a worker process
//
// docs/reference.md, "What may cross into a worker": map checks its items at compile time on the
// concrete pool, as submit checks its arguments; the error names Job (the element type), not
// the std::vector<std::tuple<Job>> of a chunk. Through cf::Executor& it is a failed item instead
// (test_transportable.cpp).
#include <string>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

struct Job {
  std::string name;  // not trivially copyable, and no cereal functions
};

std::size_t work(Job job) { return job.name.size(); }

void map_jobs(cf::ProcessPoolExecutor& pool, const std::vector<Job>& jobs) {
  for (std::size_t n : pool.map(&work, jobs)) (void)n;
}
