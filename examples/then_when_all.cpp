// Composing futures without waiting (docs/reference.md §5): each page is fetched on the I/O pool,
// its words are counted on the CPU pool with then(executor, fn), and when_all gathers the counts
// into one future; when_any picks whichever mirror answers first. No thread blocks between the
// steps: main waits only once, for the final result. A failed fetch flows through then() and
// when_all() to that result unchanged.
#include <chrono>
#include <cstddef>
#include <iostream>
#include <map>
#include <numeric>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;
using namespace std::chrono_literals;

// Pretends to download a page: waits a little, then returns its text (or fails).
std::string fetch(const std::string& url, std::chrono::milliseconds latency) {
  std::this_thread::sleep_for(latency);
  static const std::map<std::string, std::string> web = {
      {"https://example.org/a", "the quick brown fox jumps over the lazy dog"},
      {"https://example.org/b", "futures compose without blocking a thread"},
      {"https://example.org/c", "one two three four five"},
  };
  const auto page = web.find(url);
  if (page == web.end()) throw std::runtime_error("404 for " + url);
  return page->second;
}

std::size_t count_words(const std::string& text) {
  std::istringstream in(text);
  std::size_t words = 0;
  for (std::string word; in >> word;) ++words;
  return words;
}

int main() {
  cf::ThreadPoolExecutor io({.max_workers = 4, .thread_name_prefix = "io"});
  cf::ThreadPoolExecutor cpu({.max_workers = 2, .thread_name_prefix = "cpu"});

  // fetch -> count_words, chained per page; the counting runs on the CPU pool.
  std::vector<cf::Future<std::size_t>> counts;
  for (const char* url :
       {"https://example.org/a", "https://example.org/b", "https://example.org/c"}) {
    counts.push_back(io.submit(fetch, std::string(url), 50ms).then(cpu, count_words));
  }
  // One future for all of them, and a last step that runs where the last count finishes.
  cf::Future<std::size_t> total = cf::when_all(counts).then([](const std::vector<std::size_t>& v) {
    return std::accumulate(v.begin(), v.end(), std::size_t{0});
  });
  std::cout << "words on all pages: " << total.result() << '\n';

  // Mixed types: a tuple of a page's text and its word count.
  cf::Future<std::string> page = io.submit(fetch, std::string("https://example.org/c"), 10ms);
  auto both = cf::when_all(page, page.then(count_words));
  const auto& [text, words] = both.result();
  std::cout << '"' << text << "\" has " << words << " words\n";

  // The first of three mirrors to answer wins; the others are simply not waited for.
  std::vector<cf::Future<std::string>> mirrors = {
      io.submit(fetch, std::string("https://example.org/a"), 300ms),
      io.submit(fetch, std::string("https://example.org/b"), 20ms),
      io.submit(fetch, std::string("https://example.org/c"), 200ms),
  };
  const std::size_t first = cf::when_any(mirrors).result();
  std::cout << "mirror " << first << " answered first: " << mirrors[first].result() << '\n';

  // An error passes through then() and when_all() unchanged; the word count never runs for it.
  std::vector<cf::Future<std::size_t>> with_error = {
      io.submit(fetch, std::string("https://example.org/a"), 10ms).then(cpu, count_words),
      io.submit(fetch, std::string("https://example.org/missing"), 10ms).then(cpu, count_words),
  };
  try {
    cf::when_all(with_error).result();
  } catch (const std::runtime_error& e) {
    std::cout << "when_all failed: " << e.what() << '\n';
  }

  // The Future form of then() sees every outcome, so it can recover from an error.
  cf::Future<std::string> fallback =
      io.submit(fetch, std::string("https://example.org/missing"), 10ms)
          .then([](const cf::Future<std::string>& f) -> std::string {
            return f.exception() ? std::string("(page unavailable)") : f.result();
          });
  std::cout << "with a fallback: " << fallback.result() << '\n';
}
