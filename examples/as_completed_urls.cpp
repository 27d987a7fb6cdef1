// "파이썬의 새로운 병렬처리 API – Concurrent.futures" (after the Python documentation): fetch pages
// on five threads and report each as it completes, exceptions included. To run offline, load_url
// pretends: it waits a little and knows the size of each page, except the made-up domain's.
#include <chrono>
#include <cstddef>
#include <iostream>
#include <map>
#include <stdexcept>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

const std::vector<std::string> URLS = {"http://www.foxnews.com/", "http://www.cnn.com/",
                                       "http://europe.wsj.com/", "http://www.bbc.co.uk/",
                                       "http://some-made-up-domain.com/"};

std::string load_url(const std::string& url, std::chrono::seconds /*timeout*/) {
  struct Page {
    std::chrono::milliseconds latency;
    std::size_t bytes;
  };
  static const std::map<std::string, Page> web = {
      {"http://www.foxnews.com/", {std::chrono::milliseconds(250), 310'422}},
      {"http://www.cnn.com/", {std::chrono::milliseconds(100), 1'136'212}},
      {"http://europe.wsj.com/", {std::chrono::milliseconds(300), 975'305}},
      {"http://www.bbc.co.uk/", {std::chrono::milliseconds(150), 286'108}}};
  const auto page = web.find(url);
  if (page == web.end()) throw std::runtime_error("<urlopen error Name or service not known>");
  std::this_thread::sleep_for(page->second.latency);
  return std::string(page->second.bytes, 'x');
}

int main() {
  cf::ThreadPoolExecutor exe(5);
  std::unordered_map<cf::Future<std::string>, std::string> future_to_url;
  for (const std::string& url : URLS) {
    future_to_url.emplace(exe.submit(load_url, url, std::chrono::seconds(60)), url);
  }
  std::vector<cf::Future<std::string>> futures;  // the dict's keys (see as_completed_dict.cpp)
  for (const auto& [future, url] : future_to_url) futures.push_back(future);
  for (cf::Future<std::string> future : cf::as_completed(futures)) {
    const std::string& url = future_to_url.at(future);
    try {
      const std::string& data = future.result();
      std::cout << url << " page is " << data.size() << " bytes\n";
    } catch (const std::exception& exp) {
      std::cout << '\'' << url << "' generated an exception: " << exp.what() << '\n';
    }
  }
}
