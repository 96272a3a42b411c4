// Error messages in a fixed buffer: formatting one allocates nothing and needs no std::string
// (whose out-of-line members link libc++'s wide-character and float parsing into every binary).
#pragma once
#include <cstdarg>
#include <cstdio>

namespace sparsec {

struct Message {
  char text[512] = "";

  // printf-style; a message longer than the buffer is cut.
  __attribute__((format(printf, 2, 3))) void format(const char* fmt, ...) {
    va_list args;
    va_start(args, fmt);
    vformat(fmt, args);
    va_end(args);
  }
  void vformat(const char* fmt, va_list args) { std::vsnprintf(text, sizeof text, fmt, args); }
};

}  // namespace sparsec
