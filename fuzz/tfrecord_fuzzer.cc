// libFuzzer target for the TFRecord reader. Byte 0 picks the compression (NONE/GZIP/ZLIB) and
// whether corrupt records stop or are skipped; the rest is the file. Invariants: only
// tessera::Error escapes, skip mode never throws for framing errors of uncompressed files,
// and every record read survives a write/read round trip.
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <vector>

#include "support/error.h"
#include "support/file.h"
#include "train/tfrecord.h"

namespace {

// The reader works on files; a RAM-backed directory keeps that cheap.
std::string scratch_path(const char* what) {
  static const std::string dir = ::access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
  return dir + "/tessera_tfrecord_fuzz_" + std::to_string(::getpid()) + what;
}

void remove_scratch() {
  ::unlink(scratch_path(".in").c_str());
  ::unlink(scratch_path(".out").c_str());
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  std::atexit(remove_scratch);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tessera::train;
  if (size == 0) return 0;
  const Compression compression = static_cast<Compression>((data[0] & 3) % 3);
  const OnCorrupt on_corrupt = data[0] & 4 ? OnCorrupt::kSkip : OnCorrupt::kStop;
  const std::string in = scratch_path(".in"), out = scratch_path(".out");
  tessera::write_file(in, std::string(reinterpret_cast<const char*>(data) + 1, size - 1));
  std::vector<std::string> records;
  try {
    TFRecordReader r(in, compression, on_corrupt);
    std::string rec;
    while (r.next(&rec)) records.push_back(rec);
  } catch (const tessera::Error&) {
    if (on_corrupt == OnCorrupt::kSkip && compression == Compression::kNone) std::abort();
  }
  {
    TFRecordWriter w(out, compression);
    for (const auto& r : records) w.write(r);
  }
  TFRecordReader back(out, compression);
  std::string rec;
  for (const auto& r : records)
    if (!back.next(&rec) || rec != r) std::abort();
  if (back.next(&rec)) std::abort();
  return 0;
}
