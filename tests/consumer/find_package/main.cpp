#include <concurrent/futures.hpp>

int main() {
  namespace cf = concurrent::futures;
  cf::ThreadPoolExecutor ex(2);
  return ex.submit([] { return 42; }).result() == 42 ? 0 : 1;
}
