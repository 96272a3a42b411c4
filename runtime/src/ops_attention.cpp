// Transformer ops: fused scaled dot-product attention, RMS normalisation, rotary embedding, linear attention.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "op_util.h"

namespace sparsec {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A [B, S, heads*D] (rank 3) or [B, heads, S, D] (rank 4) tensor seen per (batch, head, position) row of D values.
struct Heads {
  int64_t batch = 0, heads = 0, seq = 0, dim = 0;
  size_t sb = 0, sh = 0, ss = 0;  // element strides of batch, head, position

  bool init(const Tensor& t, int64_t n_heads) {
    if (t.ndim == 4) {
      heads = t.dims[1], seq = t.dims[2], dim = t.dims[3];
    } else if (t.ndim == 3 && t.dims[2] % n_heads == 0) {
      heads = n_heads, seq = t.dims[1], dim = t.dims[2] / n_heads;
    } else {
      return false;
    }
    batch = t.dims[0];
    ss = size_t(t.ndim == 4 ? dim : heads * dim);
    sh = size_t(t.ndim == 4 ? seq * dim : dim);
    sb = size_t(heads * seq * dim);
    return heads == n_heads;
  }
  size_t at(int64_t b, int64_t h, int64_t s) const { return size_t(b) * sb + size_t(h) * sh + size_t(s) * ss; }
};

float dot(const float* a, const float* b, size_t n) {
  float s = 0.0f;
  for (size_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

// Reads a mask of rank <= 4 right-aligned against [B, H, Sq, width]; size-1 dims broadcast.
struct Mask {
  const Tensor* t = nullptr;
  int64_t width = 0;
  size_t stride[4] = {};

  bool init(const Tensor* m, int64_t B, int64_t H, int64_t Sq, int64_t Skv) {
    t = m;
    if (!m) return true;
    if (m->ndim < 1 || m->ndim > 4) return false;
    const int64_t want[4] = {B, H, Sq, Skv};
    size_t step = 1;
    for (int d = 3, k = int(m->ndim) - 1; d >= 0; --d, --k) {
      const int64_t n = k >= 0 ? m->dims[k] : 1;
      if (d == 3) {
        if (n > Skv) return false;
        width = n;
      } else if (n != 1 && n != want[d]) {
        return false;
      }
      stride[d] = n == 1 && d != 3 ? 0 : step;
      step *= size_t(n);
    }
    return true;
  }
  // The additive bias of key j in the row starting at `row` (columns past the mask's width are masked).
  float bias(size_t row, int64_t j) const {
    if (j >= width) return kNegInf;
    if (t->dtype == SPARSEC_BOOL) return t->as<uint8_t>()[row + size_t(j)] ? 0.0f : kNegInf;
    return t->f32()[row + size_t(j)];
  }
};

constexpr int64_t kQueryBlock = 64;  // query rows scored per f32_gemm call

// K^T of one kv head, pre-scaled, and a block of score rows; the compiler's attention_scratch_bytes mirrors it.
size_t attention_scratch(int64_t q_seq, int64_t kv_seq, int64_t head_dim) {
  return size_t((head_dim + std::min(q_seq, kQueryBlock)) * kv_seq) * sizeof(float);
}

// One score row in place: softcap, the additive bias (mask, causal/window frontier, padding), softmax with the
// onnx reference's fully-masked-row guard (a row whose bias is all -inf gives 0); qk_out takes the qk_mode stage.
void softmax_row(const AttentionAttrs& a, const Mask& mask, size_t mrow, int64_t i, int64_t offset, int64_t valid,
                 bool padded, float* row, int64_t n, float* qk_out) {
  bool all_masked = true;
  float m = kNegInf;
  for (int64_t j = 0; j < n; ++j) {
    float bias = mask.t ? mask.bias(mrow, j) : 0.0f;
    const int64_t diff = i + offset - j;
    if (a.causal && diff < 0) bias += kNegInf;
    if ((a.left_window >= 0 && diff > a.left_window) || (a.right_window >= 0 && -diff > a.right_window))
      bias += kNegInf;
    if (padded && j >= valid) bias += kNegInf;
    all_masked = all_masked && bias == kNegInf;
    float x = row[j];
    if (a.softcap > 0.0f) x = std::tanh(x / a.softcap) * a.softcap;
    if (qk_out && a.qk_mode < 2) qk_out[j] = x;
    x += bias;
    if (qk_out && a.qk_mode == 2) qk_out[j] = x;
    row[j] = x;
    m = std::max(m, x);
  }
  if (m == kNegInf) m = 0.0f;  // an all -inf row sums to 0: zeros, not NaN
  double sum = 0.0;
  for (int64_t j = 0; j < n; ++j) sum += (row[j] = std::exp(row[j] - m));
  if (sum == 0.0) sum = 1.0;
  for (int64_t j = 0; j < n; ++j) row[j] = all_masked ? 0.0f : float(row[j] / sum);
  if (qk_out && a.qk_mode == 3)
    for (int64_t j = 0; j < n; ++j) qk_out[j] = row[j];
}

}  // namespace

bool check_attention(const Op& op, Message* err) {
  const AttentionAttrs a = attention_attrs(op);
  Heads q, k, v, y;
  SPX_REQUIRE(op.in[1]->ndim == 4 || op.in[1]->ndim == op.in[0]->ndim, "k must have q's rank or rank 4");
  SPX_REQUIRE(q.init(*op.in[0], a.q_heads) && k.init(*op.in[1], a.kv_heads) && v.init(*op.in[2], a.kv_heads) &&
                  y.init(*op.out[0], a.q_heads),
              "q %s, k %s, v %s, y %s do not split into %lld / %lld heads", shape_str(*op.in[0]).text,
              shape_str(*op.in[1]).text, shape_str(*op.in[2]).text, shape_str(*op.out[0]).text,
              static_cast<long long>(a.q_heads), static_cast<long long>(a.kv_heads));
  SPX_REQUIRE(a.q_heads % a.kv_heads == 0, "q_heads must be a multiple of kv_heads");
  SPX_REQUIRE(k.batch == q.batch && v.batch == q.batch && y.batch == q.batch && k.dim == q.dim && v.seq == k.seq &&
                  y.seq == q.seq && y.dim == v.dim,
              "q %s, k %s, v %s, y %s do not match", shape_str(*op.in[0]).text, shape_str(*op.in[1]).text,
              shape_str(*op.in[2]).text, shape_str(*op.out[0]).text);
  Mask mask;
  SPX_REQUIRE(mask.init(optional_input(op, 3), q.batch, q.heads, q.seq, k.seq), "mask %s does not broadcast",
              shape_str(*op.in[3]).text);
  if (const Tensor* n = optional_input(op, 4))
    SPX_REQUIRE(n->numel == size_t(q.batch), "nonpad_kv_seqlen must have one value per batch");
  if (op.out.size() > 1) {
    const Tensor& s = *op.out[1];
    SPX_REQUIRE(op.out.size() == 2 && s.ndim == 4 && s.dims[0] == q.batch && s.dims[1] == q.heads &&
                    s.dims[2] == q.seq && s.dims[3] == k.seq,
                "the scores output must be [B, q_heads, Sq, Skv]");
  }
  SPX_REQUIRE(op.scratch_bytes >= attention_scratch(q.seq, k.seq, q.dim), "scratch too small");
  return true;
}

bool run_attention(const Op& op, uint8_t* scratch, Message*) {
  const AttentionAttrs a = attention_attrs(op);
  Heads q, k, v, y;
  q.init(*op.in[0], a.q_heads), k.init(*op.in[1], a.kv_heads), v.init(*op.in[2], a.kv_heads);
  y.init(*op.out[0], a.q_heads);
  Mask mask;
  mask.init(optional_input(op, 3), q.batch, q.heads, q.seq, k.seq);
  const Tensor* nonpad = optional_input(op, 4);
  float* qk_out = op.out.size() > 1 ? op.out[1]->f32() : nullptr;
  const int64_t group = a.q_heads / a.kv_heads, Skv = k.seq, D = q.dim;
  float* kt = reinterpret_cast<float*>(scratch);
  float* scores = kt + D * Skv;
  const float s2 = a.scale_sqrt * a.scale_sqrt;  // (q*s).(k*s) as q.(k*s*s)
  for (int64_t b = 0; b < q.batch; ++b) {
    // Clamped so that any run-time value compares like itself without overflowing (windows are < 2^32).
    const int64_t valid = nonpad ? std::min(std::max(nonpad->as<int64_t>()[b], -(int64_t(1) << 40)), int64_t(1) << 40) : Skv;
    const int64_t offset = nonpad ? valid - q.seq : a.past_len;  // bottom-right aligned causal frontier
    for (int64_t kvh = 0; kvh < a.kv_heads; ++kvh) {
      const float* keys = op.in[1]->f32() + k.at(b, kvh, 0);
      for (int64_t j = 0; j < Skv; ++j)
        for (int64_t d = 0; d < D; ++d) kt[d * Skv + j] = keys[size_t(j) * k.ss + size_t(d)] * s2;
      for (int64_t h = kvh * group; h < (kvh + 1) * group; ++h)
        for (int64_t i0 = 0; i0 < q.seq; i0 += kQueryBlock) {
          const size_t rows = size_t(std::min(kQueryBlock, q.seq - i0));
          f32_gemm({rows, size_t(Skv), size_t(D), op.in[0]->f32() + q.at(b, h, i0), q.ss, kt, size_t(Skv), scores,
                    size_t(Skv), nullptr, BiasMode::kNone, ActParams{}});
          for (size_t r = 0; r < rows; ++r) {
            const int64_t i = i0 + int64_t(r);
            const size_t mrow = size_t(b) * mask.stride[0] + size_t(h) * mask.stride[1] + size_t(i) * mask.stride[2];
            softmax_row(a, mask, mrow, i, offset, valid, nonpad != nullptr, scores + r * size_t(Skv), Skv,
                        qk_out ? qk_out + ((size_t(b) * q.heads + h) * q.seq + i) * Skv : nullptr);
          }
          f32_gemm({rows, size_t(y.dim), size_t(Skv), scores, size_t(Skv), op.in[2]->f32() + v.at(b, kvh, 0), v.ss,
                    op.out[0]->f32() + y.at(b, h, i0), y.ss, nullptr, BiasMode::kNone, ActParams{}});
        }
    }
  }
  return true;
}

bool check_rms_norm(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const int64_t axis = rms_norm_attrs(op).axis;
  SPX_REQUIRE(axis < int64_t(x.ndim), "axis out of range");
  SPX_REQUIRE(op.in[1]->numel == product(x.dims, size_t(axis), x.ndim), "scale size differs from the normalised size");
  SPX_REQUIRE(op.out[0]->numel == x.numel, "output size differs from input");
  return true;
}

bool run_rms_norm(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const RmsNormAttrs a = rms_norm_attrs(op);
  const size_t norm = product(x.dims, size_t(a.axis), x.ndim), rows = x.numel / std::max<size_t>(norm, 1);
  const float* scale = op.in[1]->f32();
  for (size_t r = 0; r < rows; ++r) {
    const float* in = x.f32() + r * norm;
    float* out = op.out[0]->f32() + r * norm;
    double sum = 0.0;
    for (size_t i = 0; i < norm; ++i) sum += double(in[i]) * in[i];
    const float inv = float(1.0 / std::sqrt(sum / double(norm) + a.epsilon));
    for (size_t i = 0; i < norm; ++i) out[i] = in[i] * inv * scale[i];
  }
  return true;
}

bool check_rotary(const Op& op, Message* err) {
  const RotaryAttrs a = rotary_attrs(op);
  Heads x;
  SPX_REQUIRE(x.init(*op.in[0], a.heads), "input %s does not split into %lld heads", shape_str(*op.in[0]).text,
              static_cast<long long>(a.heads));
  SPX_REQUIRE(a.rotary_dim % 2 == 0 && a.rotary_dim <= x.dim, "rotary_dim must be even and at most the head size");
  for (size_t i = 1; i < 3; ++i) {
    const Tensor& c = *op.in[i];
    SPX_REQUIRE(c.ndim == 3 && c.dims[0] == x.batch && c.dims[1] == x.seq && c.dims[2] == a.rotary_dim / 2,
                "cos/sin must be [B, S, rotary_dim/2], got %s", shape_str(c).text);
  }
  SPX_REQUIRE(op.out[0]->numel == op.in[0]->numel, "output size differs from input");
  return true;
}

bool run_rotary(const Op& op, uint8_t*, Message*) {
  const RotaryAttrs a = rotary_attrs(op);
  Heads x;
  x.init(*op.in[0], a.heads);
  const int64_t half = a.rotary_dim / 2;
  // interleaved: pairs (2i, 2i+1); else halves (i, i + half)
  const size_t step = a.interleaved ? 2 : 1, other = a.interleaved ? 1 : size_t(half);
  for (int64_t b = 0; b < x.batch; ++b)
    for (int64_t s = 0; s < x.seq; ++s) {
      const float* cs = op.in[1]->f32() + (size_t(b) * x.seq + s) * half;
      const float* sn = op.in[2]->f32() + (size_t(b) * x.seq + s) * half;
      for (int64_t h = 0; h < x.heads; ++h) {
        const float* in = op.in[0]->f32() + x.at(b, h, s);
        float* out = op.out[0]->f32() + x.at(b, h, s);
        for (int64_t d = a.rotary_dim; d < x.dim; ++d) out[d] = in[d];
        for (int64_t i = 0; i < half; ++i) {
          const float x1 = in[i * step], x2 = in[i * step + other];
          out[i * step] = cs[i] * x1 - sn[i] * x2;
          out[i * step + other] = sn[i] * x1 + cs[i] * x2;
        }
      }
    }
  return true;
}

bool check_linear_attention(const Op& op, Message* err) {
  const LinearAttentionAttrs a = linear_attention_attrs(op);
  Heads q, k, v, y;
  SPX_REQUIRE(op.in[0]->ndim == 3 && q.init(*op.in[0], a.q_heads) && k.init(*op.in[1], a.kv_heads) &&
                  v.init(*op.in[2], a.kv_heads) && y.init(*op.out[0], a.q_heads) && op.in[1]->ndim == 3 &&
                  op.in[2]->ndim == 3 && op.out[0]->ndim == 3,
              "q, k, v, y must be [B, T, heads*D]");
  SPX_REQUIRE(a.q_heads % a.kv_heads == 0 && k.batch == q.batch && v.batch == q.batch && k.seq == q.seq &&
                  v.seq == q.seq && k.dim == q.dim && y.seq == q.seq && y.dim == v.dim,
              "q %s, k %s, v %s do not match", shape_str(*op.in[0]).text, shape_str(*op.in[1]).text,
              shape_str(*op.in[2]).text);
  const size_t state = size_t(q.batch * a.kv_heads * q.dim * v.dim);
  SPX_REQUIRE(op.out[1]->numel == state, "present_state must be [B, kv_heads, Dk, Dv]");
  if (const Tensor* p = optional_input(op, 3)) SPX_REQUIRE(p->numel == state, "past_state must be [B, kv_heads, Dk, Dv]");
  if (const Tensor* g = optional_input(op, 4))
    SPX_REQUIRE(g->numel == size_t(q.batch * q.seq * a.kv_heads) || g->numel == size_t(q.batch * q.seq * a.kv_heads * q.dim),
                "decay must be [B, T, kv_heads] or [B, T, kv_heads*Dk]");
  if (const Tensor* beta = optional_input(op, 5))
    SPX_REQUIRE(beta->numel == size_t(q.batch * q.seq * a.kv_heads) || beta->numel == size_t(q.batch * q.seq),
                "beta must be [B, T, kv_heads] or [B, T, 1]");
  SPX_REQUIRE(op.scratch_bytes >= size_t(v.dim) * sizeof(float), "scratch too small");
  return true;
}

bool run_linear_attention(const Op& op, uint8_t* scratch, Message*) {
  const LinearAttentionAttrs a = linear_attention_attrs(op);
  Heads q, k, v, y;
  q.init(*op.in[0], a.q_heads), k.init(*op.in[1], a.kv_heads), v.init(*op.in[2], a.kv_heads);
  y.init(*op.out[0], a.q_heads);
  const int64_t Hkv = a.kv_heads, group = a.q_heads / Hkv, Dk = q.dim, Dv = v.dim;
  float* state = op.out[1]->f32();
  const Tensor* past = optional_input(op, 3);
  const Tensor* decay = optional_input(op, 4);
  const Tensor* beta = optional_input(op, 5);
  const size_t n_state = op.out[1]->numel;
  for (size_t i = 0; i < n_state; ++i) state[i] = past ? past->f32()[i] : 0.0f;
  const size_t steps = size_t(q.batch * q.seq);
  if (steps == 0) return true;  // the state is past_state (or zeros)
  const size_t decay_per = decay ? decay->numel / (steps * size_t(Hkv)) : 0;  // 1 or Dk per head
  const size_t beta_heads = beta ? beta->numel / steps : 0;  // kv_heads or 1
  float* delta = reinterpret_cast<float*>(scratch);
  for (int64_t t = 0; t < q.seq; ++t)
    for (int64_t b = 0; b < q.batch; ++b)
      for (int64_t h = 0; h < Hkv; ++h) {
        float* st = state + size_t(b * Hkv + h) * size_t(Dk * Dv);
        const float* kt = op.in[1]->f32() + k.at(b, h, t);
        const float* vt = op.in[2]->f32() + v.at(b, h, t);
        const size_t bt = size_t(b * q.seq + t);
        if (decay) {
          const float* g = decay->f32() + (bt * Hkv + h) * decay_per;
          for (int64_t d = 0; d < Dk; ++d) {
            const float f = std::exp(g[decay_per == 1 ? 0 : d]);
            for (int64_t m = 0; m < Dv; ++m) st[d * Dv + m] *= f;
          }
        }
        for (int64_t m = 0; m < Dv; ++m) delta[m] = vt[m];
        if (beta) {
          const float bv = beta->f32()[bt * beta_heads + (beta_heads == 1 ? 0 : h)];
          for (int64_t m = 0; m < Dv; ++m) {
            float retrieved = 0.0f;
            for (int64_t d = 0; d < Dk; ++d) retrieved += st[d * Dv + m] * kt[d];
            delta[m] = bv * (vt[m] - retrieved);
          }
        }
        for (int64_t d = 0; d < Dk; ++d)
          for (int64_t m = 0; m < Dv; ++m) st[d * Dv + m] += kt[d] * delta[m];
        for (int64_t g = 0; g < group; ++g) {
          const int64_t qh = h * group + g;
          const float* qt = op.in[0]->f32() + q.at(b, qh, t);
          float* out = op.out[0]->f32() + y.at(b, qh, t);
          for (int64_t m = 0; m < Dv; ++m) out[m] = 0.0f;
          for (int64_t d = 0; d < Dk; ++d)
            for (int64_t m = 0; m < Dv; ++m) out[m] += qt[d] * st[d * Dv + m];
          for (int64_t m = 0; m < Dv; ++m) out[m] *= a.scale;
        }
      }
  return true;
}

bool check_tensor_scatter(const Op& op, Message* err) {
  const Tensor &cache = *op.in[0], &update = *op.in[1];
  const int64_t axis = tensor_scatter_attrs(op).axis;
  SPX_REQUIRE(axis < int64_t(cache.ndim) && update.ndim == cache.ndim, "axis out of range or ranks differ");
  for (int64_t d = 0; d < int64_t(cache.ndim); ++d)
    SPX_REQUIRE(d == axis ? update.dims[d] <= cache.dims[d] : update.dims[d] == cache.dims[d],
                "update %s does not fit cache %s", shape_str(update).text, shape_str(cache).text);
  if (const Tensor* w = optional_input(op, 2))
    SPX_REQUIRE(w->numel == size_t(cache.dims[0]), "write_indices must have one value per batch");
  SPX_REQUIRE(op.out[0]->nbytes == cache.nbytes, "output size differs from the cache");
  return true;
}

bool run_tensor_scatter(const Op& op, uint8_t*, Message* err) {
  const Tensor &cache = *op.in[0], &update = *op.in[1];
  const TensorScatterAttrs a = tensor_scatter_attrs(op);
  const Tensor* w = optional_input(op, 2);
  const size_t axis = size_t(a.axis), es = sparsec_dtype_size(cache.dtype);
  const size_t outer = product(cache.dims, 0, axis), per_batch = outer / size_t(cache.dims[0]);
  const size_t row = product(cache.dims, axis + 1, cache.ndim) * es;
  const int64_t extent = cache.dims[axis], seq = update.dims[axis];
  uint8_t* out = op.out[0]->data;
  if (out != cache.data) std::memmove(out, cache.data, cache.nbytes);
  if (update.numel == 0) return true;
  for (size_t o = 0; o < outer; ++o) {
    const int64_t given = w ? w->as<const int64_t>()[o / per_batch] : 0;
    // Reduced first so that start + s cannot overflow: modulo the length (circular), else into [-2L, 2L].
    const int64_t start = a.circular ? given % extent : std::min(std::max(given, -2 * extent), 2 * extent);
    for (int64_t s = 0; s < seq; ++s) {
      int64_t k = start + s;
      if (a.circular) k %= extent;
      if (k < 0) k += extent;  // circular: Python's modulo; linear: numpy's negative index, as the onnx reference
      SPX_REQUIRE(k >= 0 && k < extent, "write index %lld + %lld is outside the cache length %lld",
                  static_cast<long long>(given), static_cast<long long>(s), static_cast<long long>(extent));
      std::memcpy(out + (o * size_t(extent) + size_t(k)) * row, update.data + (o * size_t(seq) + size_t(s)) * row, row);
    }
  }
  return true;
}

}  // namespace sparsec
