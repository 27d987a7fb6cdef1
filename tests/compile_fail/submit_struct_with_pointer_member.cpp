// expect-error: (fields<Record>|T = Record]).*a pointer cannot|a pointer cannot.*fields<Record>
//
// docs/reference.md, "What may cross into a worker": a trivially copyable struct is copied
// bytewise only when the library can see it holds no address, checking every field; here a
// nested field is a pointer. The error names the struct and says why.
#include <concurrent/futures.hpp>

namespace cf = concurrent::futures;

struct Record {
  int id;
  struct {
    double weight;
    const char* label;
  } detail;
};

int id_of(Record r) { return r.id; }

cf::Future<int> send_a_record(cf::ProcessPoolExecutor& pool) {
  return pool.submit(&id_of, Record{1, {2.0, "two"}});
}
