// cf::SharedArray: workers read and write the parent's array in place. Nothing is copied: each
// task gets the array's descriptor and a range, maps the same pages, and scales its range; the
// parent sees the result once the futures are done.
#include <cstddef>
#include <iostream>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

void scale(cf::SharedArray<float> a, std::size_t begin, std::size_t end, float k) {
  for (std::size_t i = begin; i < end; ++i) a[i] *= k;
}

int main() {
  cf::SharedArray<float> a(std::size_t{1} << 24, 1.5f);  // 64 MiB, in shared memory
  cf::ProcessPoolExecutor pool(2);
  const std::size_t half = a.size() / 2;
  // Each task writes its own half: no two writers share an element.
  auto first = pool.submit(scale, a, std::size_t{0}, half, 2.0f);
  auto second = pool.submit(scale, a, half, a.size(), 4.0f);
  first.result();
  second.result();  // done: the workers' writes are visible here
  std::cout << a[0] << ' ' << a[a.size() - 1] << '\n';  // 3 6
}
