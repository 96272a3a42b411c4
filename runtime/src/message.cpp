// format_message: a small printf for the runtime's error messages (see message.h).
#include "message.h"

namespace sparsec {
namespace {

struct Writer {
  char* out;
  size_t cap;
  size_t n = 0;

  void put(char c) {
    if (n + 1 < cap) out[n] = c;
    ++n;
  }
  void text(const char* s) {
    for (; *s; ++s) put(*s);
  }
  void number(unsigned long long value, unsigned base, bool negative) {
    char digits[24];
    int k = 0;
    do {
      digits[k++] = "0123456789abcdef"[value % base];
      value /= base;
    } while (value);
    if (negative) put('-');
    while (k) put(digits[--k]);
  }
};

}  // namespace

size_t format_message(char* out, size_t cap, const char* fmt, va_list args) {
  Writer w{out, cap};
  for (const char* p = fmt; *p; ++p) {
    if (*p != '%') {
      w.put(*p);
      continue;
    }
    int longs = 0;
    bool size = false;
    for (++p; *p == 'l' || *p == 'z'; ++p) *p == 'z' ? void(size = true) : void(++longs);
    switch (*p) {
      case 's': {
        const char* s = va_arg(args, const char*);
        w.text(s ? s : "(null)");
        break;
      }
      case 'c': w.put(char(va_arg(args, int))); break;
      case 'd': case 'i': {
        const long long v = size ? static_cast<long long>(va_arg(args, size_t)) : longs == 2 ? va_arg(args, long long)
                            : longs == 1 ? va_arg(args, long) : va_arg(args, int);
        w.number(v < 0 ? 0ull - static_cast<unsigned long long>(v) : static_cast<unsigned long long>(v), 10, v < 0);
        break;
      }
      case 'u': case 'x': {
        const unsigned long long v = size ? va_arg(args, size_t) : longs == 2 ? va_arg(args, unsigned long long)
                                     : longs == 1 ? va_arg(args, unsigned long) : va_arg(args, unsigned);
        w.number(v, *p == 'x' ? 16 : 10, false);
        break;
      }
      case '%': w.put('%'); break;
      case '\0': --p; break;  // a lone '%' at the end
      default: w.put('?');
    }
  }
  if (cap) out[w.n < cap ? w.n : cap - 1] = '\0';
  return w.n;
}

size_t format_into(char* out, size_t cap, const char* fmt, ...) {
  va_list args;
  va_start(args, fmt);
  const size_t n = format_message(out, cap, fmt, args);
  va_end(args);
  return n;
}

}  // namespace sparsec
