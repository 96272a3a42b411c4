// im2col by rows: per (channel, kh, kw) and output row, the columns whose input lies inside the image
// form one range; it is copied (memcpy at stride 1) and only the padding around it is zero-filled.
#include <algorithm>
#include <cstring>

#include "sparsec/kernels.h"

namespace sparsec {
namespace {

// First output column whose input column ow * stride - pad + offset is >= 0, and the end of those < W.
void inside_columns(const Conv2dShape& s, size_t kw, size_t* begin, size_t* end) {
  const ptrdiff_t offset = ptrdiff_t(kw * s.DW) - ptrdiff_t(s.PL), stride = ptrdiff_t(s.SW);
  const ptrdiff_t first = offset >= 0 ? 0 : (-offset + stride - 1) / stride;
  const ptrdiff_t last = ptrdiff_t(s.W) - offset <= 0 ? 0 : (ptrdiff_t(s.W) - offset + stride - 1) / stride;
  *begin = size_t(std::min<ptrdiff_t>(first, ptrdiff_t(s.OW)));
  *end = std::max(*begin, size_t(std::min<ptrdiff_t>(last, ptrdiff_t(s.OW))));
}

}  // namespace

void f32_im2col__portable(const Conv2dShape& s, const float* x, size_t c0, size_t nc, size_t oh0, size_t oh1,
                          float* cols) {
  const size_t band = (oh1 - oh0) * s.OW;
  for (size_t c = 0; c < nc; ++c) {
    const float* x_c = x + (c0 + c) * s.H * s.W;
    for (size_t kh = 0; kh < s.KH; ++kh) {
      for (size_t kw = 0; kw < s.KW; ++kw) {
        float* row = cols + ((c * s.KH + kh) * s.KW + kw) * band;
        size_t begin, end;
        inside_columns(s, kw, &begin, &end);
        const ptrdiff_t iw0 = ptrdiff_t(begin * s.SW + kw * s.DW) - ptrdiff_t(s.PL);
        for (size_t oh = oh0; oh < oh1; ++oh, row += s.OW) {
          const ptrdiff_t ih = ptrdiff_t(oh * s.SH + kh * s.DH) - ptrdiff_t(s.PT);
          if (ih < 0 || ih >= ptrdiff_t(s.H) || begin == end) {
            std::fill(row, row + s.OW, 0.0f);
            continue;
          }
          std::fill(row, row + begin, 0.0f);
          const float* in = x_c + ih * ptrdiff_t(s.W) + iw0;
          if (s.SW == 1) {
            std::memcpy(row + begin, in, (end - begin) * sizeof(float));
          } else {
            for (size_t ow = begin; ow < end; ++ow) row[ow] = in[(ow - begin) * s.SW];
          }
          std::fill(row + end, row + s.OW, 0.0f);
        }
      }
    }
  }
}

}  // namespace sparsec
