// Error messages in a fixed buffer: formatting one allocates nothing and needs no std::string
// (whose out-of-line members link libc++'s wide-character and float parsing into every binary).
#pragma once
#include <cstdarg>
#include <cstddef>

namespace sparsec {

// printf-style into out[cap] (always terminated, cut if longer); returns the untruncated length. Only the conversions
// the runtime's messages use: %s %c %d %i %u %x with l, ll or z, and %%; anything else prints as '?'. Not printf: it
// would link its float formatting and long-double arithmetic (about 15 KB of the wasm32 runtime).
size_t format_message(char* out, size_t cap, const char* fmt, va_list args);
__attribute__((format(printf, 3, 4))) size_t format_into(char* out, size_t cap, const char* fmt, ...);

struct Message {
  char text[512] = "";

  // printf-style; a message longer than the buffer is cut.
  __attribute__((format(printf, 2, 3))) void format(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vformat(fmt, args);
    va_end(args);
  }
  void vformat(const char* fmt, va_list args) { format_message(text, sizeof text, fmt, args); }
};

}  // namespace sparsec
