// libFuzzer harness: any byte string given to the loader (and, if accepted, run once) must not crash,
// leak or trip a sanitizer. Build: clang++ -fsanitize=fuzzer,address,undefined (tests/test_fuzz.py).
// Size and checksum are re-sealed so mutations reach the structural checks behind the CRC.
#include <cstdint>
#include <cstring>
#include <vector>

#include "artifact.h"
#include "sparsec_rt.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> sealed(data, data + size);
  if (size >= 32) {
    const uint64_t file_size = size;
    std::memcpy(sealed.data() + 16, &file_size, sizeof(file_size));
    const uint32_t crc = sparsec::crc32(sealed.data() + 32, size - 32);
    std::memcpy(sealed.data() + 24, &crc, sizeof(crc));
  }
  sparsec_session* session = nullptr;
  if (sparsec_load(sealed.data(), sealed.size(), &session) != SPARSEC_OK) return 0;
  for (int32_t i = 0; i < sparsec_num_inputs(session); ++i) {
    sparsec_tensor_info info;
    if (sparsec_input_info(session, i, &info) != SPARSEC_OK || info.nbytes > (64u << 20)) break;
    std::vector<uint8_t> zeros(info.nbytes, 0);
    sparsec_set_input(session, i, zeros.data(), zeros.size());
  }
  if (sparsec_arena_bytes(session) <= (256u << 20)) sparsec_run(session);
  sparsec_free(session);
  return 0;
}
