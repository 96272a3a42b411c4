// Element-wise, reduction and data-movement ops.
#include <algorithm>
#include <cmath>
#include <limits>

#include "op_util.h"
#include "sparsec_rt.h"

namespace sparsec {
namespace {

template <typename F>
void binary_all(const Op& op, const Broadcast& plan, F f) {
  const ActParams act = act_params(binary_attrs(op));
  const float* a = op.in[0]->f32();
  const float* b = op.in[1]->f32();
  float* y = op.out[0]->f32();
  const int64_t sa = plan.stride[0][plan.ndim - 1], sb = plan.stride[1][plan.ndim - 1];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[out_off + i] = f(a[off[0] + i * sa], b[off[1] + i * sb]);
    if (act.kind != Activation::kNone) f32_activation(act, y + out_off, size_t(n));
  });
}

static_assert(int(BinaryOp::kAdd) == int(BinaryKind::kAdd) && int(BinaryOp::kSub) == int(BinaryKind::kSub) &&
                  int(BinaryOp::kMul) == int(BinaryKind::kMul) && int(BinaryOp::kDiv) == int(BinaryKind::kDiv),
              "BinaryOp and BinaryKind share values");

// Float Add/Sub/Mul/Div through the vbinary microkernels. Innermost runs are contiguous (stride 1) or
// broadcast (stride 0) in each operand: same shape, a [C,1,1] operand per channel, a scalar.
void binary_microkernel(const Op& op, const Broadcast& plan) {
  const BinaryAttrs attrs = binary_attrs(op);
  const int64_t sa = plan.stride[0][plan.ndim - 1], sb = plan.stride[1][plan.ndim - 1];
  const bool both_scalar = sa == 0 && sb == 0;  // computed once and repeated along the run
  const BinaryShape shape = sa != 0 && sb != 0 ? BinaryShape::kVector
                            : sb == 0          ? BinaryShape::kScalarB
                                               : BinaryShape::kScalarA;
  const VBinaryFn kernel = f32_vbinary(static_cast<BinaryKind>(attrs.op), shape);
  const ActParams act = act_params(attrs);
  const float* a = op.in[0]->f32();
  const float* b = op.in[1]->f32();
  float* y = op.out[0]->f32();
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    float* out = y + out_off;
    kernel(both_scalar ? 1 : size_t(n), a + off[0], b + off[1], out, act);
    if (both_scalar) std::fill(out + 1, out + n, out[0]);
  });
}

// On operands widened to int64 (load_integer): no trap on / 0 or MIN / -1 (a widened unsigned value is never -1).
int64_t integer_div(int64_t a, int64_t b) { return b == 0 ? 0 : (b == -1 ? int64_t(uint64_t(0) - uint64_t(a)) : a / b); }

int64_t integer_mod(int64_t a, int64_t b, bool c_style) {
  if (b == 0 || b == -1) return 0;
  const int64_t r = a % b;
  return c_style || r == 0 || ((r < 0) == (b < 0)) ? r : r + b;
}

// a^b by squaring (wrapping); a negative b gives the truncated 1 / a^-b: 0 unless |a| == 1.
int64_t integer_pow(int64_t a, int64_t b) {
  if (b < 0) return a == 1 ? 1 : a == -1 ? ((b & 1) ? -1 : 1) : 0;
  uint64_t result = 1, base = uint64_t(a);
  for (uint64_t e = uint64_t(b); e; e >>= 1, base *= base)
    if (e & 1) result *= base;
  return int64_t(result);
}

int64_t integer_binary(BinaryOp kind, int64_t a, int64_t b) {
  switch (kind) {  // wrap-around like onnxruntime's, computed unsigned (signed overflow is undefined)
    case BinaryOp::kAdd: return int64_t(uint64_t(a) + uint64_t(b));
    case BinaryOp::kSub: return int64_t(uint64_t(a) - uint64_t(b));
    case BinaryOp::kMul: return int64_t(uint64_t(a) * uint64_t(b));
    case BinaryOp::kDiv: return integer_div(a, b);
    case BinaryOp::kMax: return std::max(a, b);
    case BinaryOp::kMin: return std::min(a, b);
    case BinaryOp::kMod: return integer_mod(a, b, false);
    case BinaryOp::kFmod: return integer_mod(a, b, true);
    case BinaryOp::kPow: return integer_pow(a, b);
    default: return 0;  // refused by check_binary
  }
}

// Integer operands are shape arithmetic and indices: small, so one strided loop over every integer dtype
// (widened to int64, narrowed on store: small code) is enough; so are the float ops without a microkernel.
void binary_integer(const Op& op, const Broadcast& plan, BinaryOp kind) {
  const Tensor& a = *op.in[0];
  const Tensor& b = *op.in[1];
  const Tensor& y = *op.out[0];
  const int64_t sa = plan.stride[0][plan.ndim - 1], sb = plan.stride[1][plan.ndim - 1];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      store_integer(y.data, y.dtype, out_off + size_t(i),
                    integer_binary(kind, load_integer(a.data, a.dtype, size_t(off[0] + i * sa)),
                                   load_integer(b.data, b.dtype, size_t(off[1] + i * sb))));
  });
}

float unary_math(UnaryOp kind, float x) {
  switch (kind) {
    case UnaryOp::kExp: return std::exp(x);
    case UnaryOp::kLog: return std::log(x);
    case UnaryOp::kSqrt: return std::sqrt(x);
    case UnaryOp::kNeg: return -x;
    case UnaryOp::kAbs: return std::fabs(x);
    case UnaryOp::kReciprocal: return 1.0f / x;
    case UnaryOp::kErf: return std::erf(x);
    case UnaryOp::kFloor: return std::floor(x);
    case UnaryOp::kCeil: return std::ceil(x);
    case UnaryOp::kRound: return std::nearbyint(x);  // ONNX rounds half to even
    case UnaryOp::kSin: return std::sin(x);
    case UnaryOp::kCos: return std::cos(x);
    case UnaryOp::kSign: return float((x > 0.0f) - (x < 0.0f));
    // Through the functions above and atan (a few ulp; each libm function costs the wasm build kilobytes).
    case UnaryOp::kTan: return std::sin(x) / std::cos(x);
    case UnaryOp::kAtan: return std::atan(x);
    case UnaryOp::kAsin: return std::atan(x / std::sqrt((1.0f - x) * (1.0f + x)));
    case UnaryOp::kAcos: return 2.0f * std::atan(std::sqrt((1.0f - x) / (1.0f + x)));
    case UnaryOp::kSinh: return 0.5f * (std::expm1(x) - std::expm1(-x));
    case UnaryOp::kCosh: return 0.5f * (std::exp(x) + std::exp(-x));
    case UnaryOp::kAsinh: {
      const float a = std::fabs(x);  // log1p(a + a^2 / (1 + sqrt(1 + a^2))), the large-a form avoids a^2 overflow
      const float y = a > 1e18f ? std::log(a) + 0.693147181f : std::log1p(a + a * a / (1.0f + std::sqrt(1.0f + a * a)));
      return std::copysign(y, x);
    }
    case UnaryOp::kAcosh: {
      const float t = x - 1.0f;
      return x > 1e18f ? std::log(x) + 0.693147181f : std::log1p(t + std::sqrt(t * (x + 1.0f)));
    }
    case UnaryOp::kAtanh: return 0.5f * std::log1p(2.0f * x / (1.0f - x));
  }
  return x;
}

}  // namespace

bool check_binary(const Op& op, Message* err) {
  const BinaryAttrs a = binary_attrs(op);
  if (op.in[0]->dtype != SPARSEC_FLOAT32) {
    SPX_REQUIRE(a.activation == Activation::kNone, "integer operands take no activation");
    SPX_REQUIRE(a.op != BinaryOp::kPrelu, "PRELU takes float32 operands");
  }
  Broadcast plan;
  SPX_REQUIRE(make_broadcast(*op.out[0], op.in.data(), 2, &plan),
              "shapes %s and %s do not broadcast to %s", shape_str(*op.in[0]).text, shape_str(*op.in[1]).text,
              shape_str(*op.out[0]).text);
  return true;
}

bool run_binary(const Op& op, uint8_t*, Message*) {
  Broadcast plan;
  make_broadcast(*op.out[0], op.in.data(), 2, &plan);
  const BinaryOp kind = binary_attrs(op).op;
  if (op.in[0]->dtype != SPARSEC_FLOAT32) {
    binary_integer(op, plan, kind);
    return true;
  }
  switch (kind) {
    case BinaryOp::kAdd: case BinaryOp::kSub: case BinaryOp::kMul: case BinaryOp::kDiv:
      binary_microkernel(op, plan);
      break;
    case BinaryOp::kPow: binary_all(op, plan, [](float a, float b) { return std::pow(a, b); }); break;
    case BinaryOp::kMax: binary_all(op, plan, [](float a, float b) { return std::max(a, b); }); break;
    case BinaryOp::kMin: binary_all(op, plan, [](float a, float b) { return std::min(a, b); }); break;
    case BinaryOp::kPrelu: binary_all(op, plan, [](float a, float b) { return a < 0.0f ? a * b : a; }); break;
    case BinaryOp::kFmod: binary_all(op, plan, [](float a, float b) { return std::fmod(a, b); }); break;
    case BinaryOp::kMod:
      binary_all(op, plan, [](float a, float b) {
        const float r = std::fmod(a, b);
        return r != 0.0f && ((r < 0.0f) != (b < 0.0f)) ? r + b : r;
      });
      break;
  }
  return true;
}

bool check_unary(const Op& op, Message* err) { return same_numel(op, err); }

bool run_unary(const Op& op, uint8_t*, Message*) {
  const float* x = op.in[0]->f32();
  float* y = op.out[0]->f32();
  const UnaryOp kind = unary_attrs(op).op;
  for (size_t i = 0, n = op.in[0]->numel; i < n; ++i) y[i] = unary_math(kind, x[i]);
  return true;
}

bool check_activation(const Op& op, Message* err) { return same_numel(op, err); }

bool run_activation(const Op& op, uint8_t*, Message*) {
  const float* x = op.in[0]->f32();
  float* y = op.out[0]->f32();
  const size_t n = op.in[0]->numel;
  if (y != x) std::memcpy(y, x, n * sizeof(float));
  f32_activation(act_params(activation_attrs(op)), y, n);
  return true;
}

// Every reduced axis (ignoring size-1 axes) comes after every kept one: outputs reduce contiguous rows.
bool reduces_rows(const Tensor& x, int64_t mask) {
  bool reducing = false;
  for (uint32_t d = 0; d < x.ndim; ++d) {
    const bool reduced = (mask >> d) & 1;
    if (x.dims[d] == 1) continue;
    if (reducing && !reduced) return false;
    reducing |= reduced;
  }
  return true;
}

bool check_reduce(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const ReduceAttrs a = reduce_attrs(op);
  const bool integer = x.dtype != SPARSEC_FLOAT32;
  SPX_REQUIRE(!integer || a.kind == ReduceKind::kMax || a.kind == ReduceKind::kMin ||
                  (x.dtype != SPARSEC_BOOL && (a.kind == ReduceKind::kSum || a.kind == ReduceKind::kProd ||
                                               a.kind == ReduceKind::kL1 || a.kind == ReduceKind::kSumSquare)),
              "this reduction takes float32 input");
  const Tensor* axes = optional_input(op, 1);
  if (axes) {
    SPX_REQUIRE(a.axes_mask == 0 && a.algorithm == ReduceAlgo::kGeneric && axes->ndim == 1,
                "a run-time axes input needs axes_mask 0, algorithm GENERIC and a 1-D axes tensor");
    return true;
  }
  SPX_REQUIRE(a.axes_mask > 0 && a.axes_mask < (int64_t(1) << x.ndim), "reduction axes out of range");
  size_t kept = 1;
  for (uint32_t d = 0; d < x.ndim; ++d) kept *= (a.axes_mask >> d) & 1 ? 1 : size_t(x.dims[d]);
  SPX_REQUIRE(op.out[0]->numel == kept, "output size differs from the reduced input");
  if (a.algorithm != ReduceAlgo::kGeneric) {
    SPX_REQUIRE(!integer && reduces_rows(x, a.axes_mask) && x.numel > 0,
                "algorithm ROWS needs float32 input with the reduced axes innermost");
    SPX_REQUIRE(a.algorithm == ReduceAlgo::kRowMean ? a.kind == ReduceKind::kMean
                                                     : a.kind == ReduceKind::kSum || a.kind == ReduceKind::kMax ||
                                                           a.kind == ReduceKind::kMin,
                "algorithm %s does not compute this reduction", a.algorithm == ReduceAlgo::kRowMean ? "ROW_MEAN" : "ROWS");
  }
  return true;
}

namespace {

// The reduced axes as a mask: axes_mask, else the run-time axes input read as ONNX does (negative axes count from
// the end; none: every axis, or none with noop_with_empty_axes). Fails when the output shape does not match.
bool reduction_mask(const Op& op, int64_t* mask, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const ReduceAttrs a = reduce_attrs(op);
  *mask = a.axes_mask;
  const Tensor* axes = optional_input(op, 1);
  if (!axes) return true;
  const int64_t* v = axes->as<int64_t>();
  const int64_t rank = int64_t(x.ndim);
  for (size_t i = 0; i < axes->numel; ++i) {
    SPX_REQUIRE(v[i] >= -rank && v[i] < rank, "axis %lld is outside [-%lld, %lld)", static_cast<long long>(v[i]),
                static_cast<long long>(rank), static_cast<long long>(rank));
    *mask |= int64_t(1) << (v[i] < 0 ? v[i] + rank : v[i]);
  }
  if (axes->numel == 0 && !a.noop_with_empty_axes) *mask = (int64_t(1) << rank) - 1;
  uint32_t k = 0;
  bool same = true;
  for (uint32_t d = 0; d < x.ndim; ++d) {
    const bool reduced = (*mask >> d) & 1;
    if (a.keepdims) same &= y.ndim == x.ndim && y.dims[d] == (reduced ? 1 : x.dims[d]);
    else if (!reduced) same &= k < y.ndim && y.dims[k++] == x.dims[d];
  }
  SPX_REQUIRE(same && (a.keepdims || k == y.ndim), "axes input gives another output shape than the compiled %s",
              shape_str(y).text);
  return true;
}

// Sum/max/min over contiguous rows, one per output.
void reduce_rows(const Tensor& x, ReduceKind kind, float* out, size_t n_out) {
  const size_t row = x.numel / std::max<size_t>(n_out, 1);
  for (size_t o = 0; o < n_out; ++o) {
    const float* in = x.f32() + o * row;
    float acc = kind == ReduceKind::kMax || kind == ReduceKind::kMin ? in[0] : 0.0f;
    if (kind == ReduceKind::kMax) for (size_t i = 1; i < row; ++i) acc = std::max(acc, in[i]);
    else if (kind == ReduceKind::kMin) for (size_t i = 1; i < row; ++i) acc = std::min(acc, in[i]);
    else for (size_t i = 0; i < row; ++i) acc += in[i];
    out[o] = acc;
  }
}

// Kept dims (one output each) and reduced dims of a reduction, with the input's strides.
struct ReducePlan {
  size_t nk = 0, nr = 0, count = 1;
  int64_t kept_dims[kMaxDims], kept_strides[kMaxDims], red_dims[kMaxDims], red_strides[kMaxDims];
};

ReducePlan reduce_plan(const Tensor& x, int64_t mask) {
  ReducePlan p;
  int64_t strides[kMaxDims];
  contiguous_strides(x, strides);
  for (uint32_t d = 0; d < x.ndim; ++d) {
    if ((mask >> d) & 1) {
      p.red_dims[p.nr] = x.dims[d];
      p.red_strides[p.nr++] = strides[d];
      p.count *= size_t(x.dims[d]);
    } else {
      p.kept_dims[p.nk] = x.dims[d];
      p.kept_strides[p.nk++] = strides[d];
    }
  }
  return p;
}

// One odometer step over n dims; returns the new offset.
size_t odometer_step(size_t off, int64_t* idx, const int64_t* dims, const int64_t* strides, size_t n) {
  for (int d = int(n) - 1; d >= 0; --d) {
    off += size_t(strides[d]);
    if (++idx[d] < dims[d]) break;
    off -= size_t(strides[d] * dims[d]);
    idx[d] = 0;
  }
  return off;
}

// Calls f(output index, offsets visitor) per output; visit(g) calls g(offset) for each reduced element.
template <typename F>
void for_each_reduction(const ReducePlan& p, size_t n_out, F&& f) {
  int64_t kidx[kMaxDims] = {};
  size_t base = 0;
  for (size_t o = 0; o < n_out; ++o) {
    f(o, [&](auto&& g) {
      int64_t ridx[kMaxDims] = {};
      for (size_t i = 0, off = base; i < p.count; ++i, off = odometer_step(off, ridx, p.red_dims, p.red_strides, p.nr))
        g(off);
    });
    base = odometer_step(base, kidx, p.kept_dims, p.kept_strides, p.nk);
  }
}

void reduce_float(const Tensor& x, const ReducePlan& p, ReduceKind kind, float* out, size_t n_out) {
  const float* in = x.f32();
  for_each_reduction(p, n_out, [&](size_t o, auto&& visit) {
    double acc = kind == ReduceKind::kProd ? 1.0 : 0.0;
    float best = kind == ReduceKind::kMax ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    float max_for_lse = -std::numeric_limits<float>::infinity();
    if (kind == ReduceKind::kLogSumExp) visit([&](size_t off) { max_for_lse = std::max(max_for_lse, in[off]); });
    if (std::isinf(max_for_lse)) max_for_lse = 0.0f;  // all -inf (or empty): log(sum) alone gives the answer
    visit([&](size_t off) {
      const float v = in[off];
      switch (kind) {
        case ReduceKind::kMean: case ReduceKind::kSum: case ReduceKind::kLogSum: acc += v; break;
        case ReduceKind::kMax: best = std::max(best, v); break;
        case ReduceKind::kMin: best = std::min(best, v); break;
        case ReduceKind::kProd: acc *= v; break;
        case ReduceKind::kL1: acc += std::fabs(v); break;
        case ReduceKind::kL2: case ReduceKind::kSumSquare: acc += double(v) * v; break;
        case ReduceKind::kLogSumExp: acc += std::exp(double(v - max_for_lse)); break;
      }
    });
    switch (kind) {
      case ReduceKind::kMean: out[o] = float(acc / double(p.count)); break;
      case ReduceKind::kMax: case ReduceKind::kMin: out[o] = best; break;
      case ReduceKind::kL2: out[o] = float(std::sqrt(acc)); break;
      case ReduceKind::kLogSum: out[o] = float(std::log(acc)); break;
      case ReduceKind::kLogSumExp: out[o] = float(std::log(acc)) + max_for_lse; break;
      default: out[o] = float(acc);
    }
  });
}

// The dtype's lowest (highest) value: what an empty max (min) gives.
int64_t integer_limit(uint8_t dtype, bool highest) {
  switch (dtype) {
    case SPARSEC_INT64: return highest ? std::numeric_limits<int64_t>::max() : std::numeric_limits<int64_t>::min();
    case SPARSEC_INT32: return highest ? std::numeric_limits<int32_t>::max() : std::numeric_limits<int32_t>::min();
    case SPARSEC_INT8: return highest ? 127 : -128;
    case SPARSEC_BOOL: return highest ? 1 : 0;
    default: return highest ? 255 : 0;
  }
}

// Integer reductions in 64 bits, stored truncated: sums and products wrap modulo 2^bits of the dtype (unsigned
// arithmetic, as onnxruntime's wrap), max/min compare the exact values.
void reduce_integer(const Tensor& x, const ReducePlan& p, ReduceKind kind, Tensor& y) {
  for_each_reduction(p, y.numel, [&](size_t o, auto&& visit) {
    const bool max = kind == ReduceKind::kMax, min = kind == ReduceKind::kMin;
    int64_t best = integer_limit(y.dtype, min);
    uint64_t acc = kind == ReduceKind::kProd ? 1 : 0;
    visit([&](size_t off) {
      const int64_t v = load_integer(x.data, x.dtype, off);
      const uint64_t u = uint64_t(v);
      if (max || min) best = max ? std::max(best, v) : std::min(best, v);
      else if (kind == ReduceKind::kProd) acc *= u;
      else if (kind == ReduceKind::kL1) acc += v < 0 ? 0 - u : u;
      else acc += kind == ReduceKind::kSumSquare ? u * u : u;
    });
    if (max || min) acc = uint64_t(best);
    switch (y.dtype) {
      case SPARSEC_INT64: y.as<int64_t>()[o] = int64_t(acc); break;
      case SPARSEC_INT32: y.as<uint32_t>()[o] = uint32_t(acc); break;
      default: y.as<uint8_t>()[o] = uint8_t(acc); break;  // int8, uint8, bool: the low byte
    }
  });
}

}  // namespace

bool run_reduce(const Op& op, uint8_t*, Message* err) {
  const Tensor& x = *op.in[0];
  Tensor& y = *op.out[0];
  const ReduceAttrs a = reduce_attrs(op);
  if (a.algorithm == ReduceAlgo::kRowMean) {
    f32_gavgpool_cw(y.numel, x.numel / y.numel, x.f32(), y.f32());
    return true;
  }
  if (a.algorithm == ReduceAlgo::kRows) {
    reduce_rows(x, a.kind, y.f32(), y.numel);
    return true;
  }
  int64_t mask = 0;
  if (!reduction_mask(op, &mask, err)) return false;
  const ReducePlan p = reduce_plan(x, mask);
  if (x.dtype == SPARSEC_FLOAT32) reduce_float(x, p, a.kind, y.f32(), y.numel);
  else reduce_integer(x, p, a.kind, y);
  return true;
}

bool check_transpose(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const int64_t* perm = transpose_attrs(op).perm;
  SPX_REQUIRE(y.ndim == x.ndim, "output rank differs from input");
  bool seen[kMaxDims] = {};
  for (uint32_t d = 0; d < x.ndim; ++d) {
    const int64_t p = perm[d];
    SPX_REQUIRE(p < int64_t(x.ndim) && !seen[p], "perm is not a permutation");
    seen[p] = true;
    SPX_REQUIRE(y.dims[d] == x.dims[p], "output %s is not the permuted input %s", shape_str(y).text, shape_str(x).text);
  }
  return true;
}

bool run_transpose(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const int64_t* perm = transpose_attrs(op).perm;
  const size_t es = sparsec_dtype_size(x.dtype);
  int64_t in_strides[kMaxDims], src_strides[kMaxDims], out_strides[kMaxDims];
  contiguous_strides(x, in_strides);
  contiguous_strides(y, out_strides);
  for (uint32_t d = 0; d < x.ndim; ++d) src_strides[d] = in_strides[perm[d]];
  Broadcast plan;  // walk the output in order; operand 0 = the permuted input, operand 1 = the output
  plan.n_operands = 2;
  plan.ndim = y.ndim == 0 ? 1 : y.ndim;
  for (size_t d = 0; d < plan.ndim; ++d) {
    plan.dims[d] = y.ndim == 0 ? 1 : y.dims[d];
    plan.stride[0][d] = y.ndim == 0 ? 0 : src_strides[d];
    plan.stride[1][d] = y.ndim == 0 ? 0 : out_strides[d];
  }
  const size_t last = plan.ndim - 1;
  const int64_t s = plan.stride[0][last];
  if (es == 4 && s != 1 && y.ndim >= 2) {
    // The input's last axis moved to output axis q < last: axes (q, last) of the output are a small matrix, the
    // transpose of input rows (stride s); e.g. batched matrix transposes, NCHW -> NHWC.
    size_t q = 0;
    while (perm[q] != int64_t(x.ndim) - 1) ++q;
    const size_t rows = size_t(plan.dims[last]), cols = size_t(plan.dims[q]);
    plan.dims[q] = plan.dims[last] = 1;
    for_each_run(plan, [&](size_t, const int64_t* off, int64_t) {
      transpose_f32(x.f32() + off[0], size_t(s), y.f32() + off[1], size_t(out_strides[q]), rows, cols);
    });
    return true;
  }
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    if (s == 1) {  // the last axis stays last, e.g. attention's head split: whole runs
      std::memcpy(y.data + out_off * es, x.data + size_t(off[0]) * es, size_t(n) * es);
    } else {
      for (int64_t i = 0; i < n; ++i) std::memcpy(y.data + (out_off + i) * es, x.data + (off[0] + i * s) * es, es);
    }
  });
  return true;
}

bool check_copy(const Op& op, Message* err) { return same_numel(op, err); }

bool run_copy(const Op& op, uint8_t*, Message*) {
  if (op.out[0]->data != op.in[0]->data) std::memmove(op.out[0]->data, op.in[0]->data, op.in[0]->nbytes);
  return true;
}

// Concat and Split share one check: the many side's dims equal the one side's except along axis.
bool check_joined(const Tensor& whole, const Tensor* const* parts, size_t n, int64_t axis, Message* err) {
  SPX_REQUIRE(axis >= 0 && axis < int64_t(whole.ndim), "axis out of range");
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const Tensor& p = *parts[i];
    SPX_REQUIRE(p.ndim == whole.ndim, "parts differ in rank");
    for (uint32_t d = 0; d < whole.ndim; ++d)
      SPX_REQUIRE(int64_t(d) == axis || p.dims[d] == whole.dims[d], "part %s does not fit %s", shape_str(p).text,
                  shape_str(whole).text);
    total += p.dims[axis];
  }
  SPX_REQUIRE(total == whole.dims[axis], "parts do not add up along the axis");
  return true;
}

bool check_concat(const Op& op, Message* err) {
  return check_joined(*op.out[0], op.in.data(), op.in.size(), concat_attrs(op).axis, err);
}

bool check_split(const Op& op, Message* err) {
  return check_joined(*op.in[0], op.out.data(), op.out.size(), split_attrs(op).axis, err);
}

// Moves bytes between the whole tensor and its parts along axis (to_whole: concat, else split).
void move_parts(const Tensor& whole, const Tensor* const* parts, size_t n, int64_t axis, bool to_whole) {
  const size_t es = sparsec_dtype_size(whole.dtype);
  const size_t outer = product(whole.dims, 0, size_t(axis)), inner = product(whole.dims, size_t(axis) + 1, whole.ndim) * es;
  const size_t whole_row = size_t(whole.dims[axis]) * inner;
  size_t offset = 0;
  for (size_t i = 0; i < n; ++i) {
    const size_t part_row = size_t(parts[i]->dims[axis]) * inner;
    for (size_t o = 0; o < outer; ++o) {
      uint8_t* w = whole.data + o * whole_row + offset;
      uint8_t* p = parts[i]->data + o * part_row;
      if (to_whole) std::memcpy(w, p, part_row); else std::memcpy(p, w, part_row);
    }
    offset += part_row;
  }
}

bool run_concat(const Op& op, uint8_t*, Message*) {
  move_parts(*op.out[0], op.in.data(), op.in.size(), concat_attrs(op).axis, true);
  return true;
}

bool run_split(const Op& op, uint8_t*, Message*) {
  move_parts(*op.in[0], op.out.data(), op.out.size(), split_attrs(op).axis, false);
  return true;
}

bool check_slice(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const SliceAttrs a = slice_attrs(op);
  SPX_REQUIRE(y.ndim == x.ndim, "output rank differs from input");
  for (uint32_t d = 0; d < x.ndim; ++d) {
    const int64_t start = a.starts[d], step = a.steps[d];
    SPX_REQUIRE(step != 0, "slice step is zero");
    if (y.dims[d] == 0) continue;
    const int64_t span = x.dims[d] - 1, magnitude = step < 0 ? -step : step;
    SPX_REQUIRE(y.dims[d] - 1 <= span / magnitude, "slice of %s to %s is too long", shape_str(x).text, shape_str(y).text);
    const int64_t last = start + (y.dims[d] - 1) * step;
    SPX_REQUIRE(start >= 0 && start < x.dims[d] && last >= 0 && last < x.dims[d],
                "slice of %s to %s reads outside the input", shape_str(x).text, shape_str(y).text);
  }
  return true;
}

// y[i] = x[starts + i * steps] per axis.
static void slice_copy(const Tensor& x, const Tensor& y, const int64_t* starts, const int64_t* steps) {
  if (y.numel == 0) return;
  const size_t es = sparsec_dtype_size(x.dtype);
  int64_t strides[kMaxDims];
  contiguous_strides(x, strides);
  int64_t start = 0;
  Broadcast plan;
  plan.n_operands = 1;
  plan.ndim = std::max<uint32_t>(y.ndim, 1);
  for (size_t d = 0; d < plan.ndim; ++d) {
    plan.dims[d] = y.ndim ? y.dims[d] : 1;
    plan.stride[0][d] = y.ndim ? strides[d] * steps[d] : 0;
    if (y.ndim) start += starts[d] * strides[d];
  }
  const int64_t s = plan.stride[0][plan.ndim - 1];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(y.data + (out_off + i) * es, x.data + (start + off[0] + i * s) * es, es);
  });
}

bool run_slice(const Op& op, uint8_t*, Message*) {
  const SliceAttrs a = slice_attrs(op);
  slice_copy(*op.in[0], *op.out[0], a.starts, a.steps);
  return true;
}

bool check_dynamic_slice(const Op& op, Message* err) {
  const size_t n = op.in[1]->numel;
  SPX_REQUIRE(op.out[0]->ndim == op.in[0]->ndim, "output rank differs from input");
  SPX_REQUIRE(op.in[2]->numel == n && (!optional_input(op, 3) || op.in[3]->numel == n) &&
                  (!optional_input(op, 4) || op.in[4]->numel == n) && n <= op.in[0]->ndim,
              "starts, ends, axes and steps differ in length");
  return true;
}

// ONNX Slice semantics: negative starts/ends count from the end, then clamp; the result must fit the output.
bool run_dynamic_slice(const Op& op, uint8_t*, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const Tensor* axes = optional_input(op, 3);
  const Tensor* steps_in = optional_input(op, 4);
  int64_t starts[kMaxDims] = {}, steps[kMaxDims], length[kMaxDims];
  for (uint32_t d = 0; d < x.ndim; ++d) steps[d] = 1, length[d] = x.dims[d];
  for (size_t k = 0; k < op.in[1]->numel; ++k) {
    int64_t axis = axes ? index_value(*axes, k) : int64_t(k);
    axis = axis < 0 ? axis + x.ndim : axis;
    SPX_REQUIRE(axis >= 0 && axis < int64_t(x.ndim), "Slice: axis %lld out of range", static_cast<long long>(axis));
    const int64_t dim = x.dims[axis], step = steps_in ? index_value(*steps_in, k) : 1;
    SPX_REQUIRE(step != 0, "Slice: step is zero");
    int64_t start = index_value(*op.in[1], k), end = index_value(*op.in[2], k);
    start = start < 0 ? start + dim : start;
    end = end < 0 ? end + dim : end;
    if (step > 0) {
      start = std::min(std::max<int64_t>(start, 0), dim);
      end = std::min(std::max<int64_t>(end, 0), dim);
    } else {
      start = std::min(std::max<int64_t>(start, 0), dim - 1);
      end = std::min(std::max<int64_t>(end, -1), dim - 1);
    }
    const int64_t span = step > 0 ? end - start : start - end, magnitude = step > 0 ? step : -step;
    length[axis] = span > 0 ? (span + magnitude - 1) / magnitude : 0;
    starts[axis] = length[axis] ? start : 0;
    steps[axis] = step;
  }
  for (uint32_t d = 0; d < x.ndim; ++d)
    SPX_REQUIRE(length[d] == y.dims[d], "Slice: starts/ends/axes/steps give %lld elements along axis %u; the model "
                "declared %lld", static_cast<long long>(length[d]), d, static_cast<long long>(y.dims[d]));
  slice_copy(x, y, starts, steps);
  return true;
}

bool check_gather(const Op& op, Message* err) {
  const Tensor& data = *op.in[0];
  const Tensor& idx = *op.in[1];
  const Tensor& y = *op.out[0];
  const int64_t axis = gather_attrs(op).axis;
  SPX_REQUIRE(axis < int64_t(data.ndim), "axis out of range");
  SPX_REQUIRE(y.ndim == data.ndim - 1 + idx.ndim, "output rank is wrong");
  uint32_t d = 0;
  for (int64_t i = 0; i < axis; ++i) SPX_REQUIRE(y.dims[d++] == data.dims[i], "output shape is wrong");
  for (uint32_t i = 0; i < idx.ndim; ++i) SPX_REQUIRE(y.dims[d++] == idx.dims[i], "output shape is wrong");
  for (uint32_t i = uint32_t(axis) + 1; i < data.ndim; ++i) SPX_REQUIRE(y.dims[d++] == data.dims[i], "output shape is wrong");
  return true;
}

bool run_gather(const Op& op, uint8_t*, Message* err) {
  const Tensor& data = *op.in[0];
  const Tensor& idx = *op.in[1];
  const size_t axis = size_t(gather_attrs(op).axis);
  const size_t es = sparsec_dtype_size(data.dtype);
  const size_t outer = product(data.dims, 0, axis), inner = product(data.dims, axis + 1, data.ndim) * es;
  const int64_t extent = data.dims[axis];
  uint8_t* out = op.out[0]->data;
  for (size_t o = 0; o < outer; ++o) {
    for (size_t i = 0; i < idx.numel; ++i) {
      const int64_t given = index_value(idx, i);
      const int64_t k = given < 0 ? given + extent : given;
      SPX_REQUIRE(k >= 0 && k < extent, "index %lld out of range [%lld, %lld)", static_cast<long long>(given),
                  static_cast<long long>(-extent), static_cast<long long>(extent));
      std::memcpy(out, data.data + (o * size_t(extent) + size_t(k)) * inner, inner);
      out += inner;
    }
  }
  return true;
}

// The padded shape and what each mode needs of the input (pads may be negative: a crop).
static bool check_pad_edges(const Tensor& x, const Tensor& y, PadMode mode, const int64_t* begins, const int64_t* ends,
                            Message* err) {
  for (uint32_t d = 0; d < x.ndim; ++d) {
    const int64_t b = begins[d], e = ends[d];
    SPX_REQUIRE(y.dims[d] == x.dims[d] + b + e, "Pad: output %s is not input %s padded by %lld, %lld along axis %u",
                shape_str(y).text, shape_str(x).text, static_cast<long long>(b), static_cast<long long>(e), d);
    const int64_t kept = x.dims[d] - std::max<int64_t>(-b, 0) - std::max<int64_t>(-e, 0);  // after cropping
    SPX_REQUIRE(kept >= 0, "Pad: axis %u cropped by more than its size", d);
    SPX_REQUIRE(mode != PadMode::kReflect || (b < kept && e < kept), "reflect pad wider than input");
    SPX_REQUIRE(mode == PadMode::kConstant || kept > 0 || y.dims[d] == 0, "edge or wrap pad of an empty axis");
  }
  return true;
}

// begins/ends: the attributes, or the pads (and axes) inputs read at run time.
static bool pad_edges(const Op& op, int64_t* begins, int64_t* ends, Message* err) {
  const Tensor& x = *op.in[0];
  const PadAttrs a = pad_attrs(op);
  const Tensor* pads = optional_input(op, 2);
  const Tensor* axes = optional_input(op, 3);
  for (uint32_t d = 0; d < x.ndim; ++d) begins[d] = pads ? 0 : a.begins[d], ends[d] = pads ? 0 : a.ends[d];
  if (!pads) return true;
  const size_t n = axes ? axes->numel : x.ndim;
  SPX_REQUIRE(pads->numel == 2 * n, "Pad: %zu pads for %zu axes", pads->numel, n);
  for (size_t k = 0; k < n; ++k) {
    int64_t axis = axes ? index_value(*axes, k) : int64_t(k);
    axis = axis < 0 ? axis + x.ndim : axis;
    SPX_REQUIRE(axis >= 0 && axis < int64_t(x.ndim), "Pad: axis %lld out of range", static_cast<long long>(axis));
    begins[axis] = index_value(*pads, k);
    ends[axis] = index_value(*pads, k + n);
  }
  return true;
}

bool check_pad(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  SPX_REQUIRE(op.out[0]->ndim == x.ndim, "output rank differs from input");
  SPX_REQUIRE(!optional_input(op, 1) || op.in[1]->numel == 1, "the pad value must be a scalar");
  const PadAttrs a = pad_attrs(op);
  return optional_input(op, 2) || check_pad_edges(x, *op.out[0], a.mode, a.begins, a.ends, err);
}

bool run_pad(const Op& op, uint8_t*, Message* err) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const PadMode mode = pad_attrs(op).mode;
  int64_t begins[kMaxDims], ends[kMaxDims];
  if (!pad_edges(op, begins, ends, err) || (optional_input(op, 2) && !check_pad_edges(x, y, mode, begins, ends, err)))
    return false;
  const size_t es = sparsec_dtype_size(x.dtype);
  uint8_t fill[8] = {};
  if (const Tensor* value = optional_input(op, 1)) std::memcpy(fill, value->data, es);
  int64_t strides[kMaxDims], idx[kMaxDims] = {};
  contiguous_strides(x, strides);
  for (size_t o = 0; o < y.numel; ++o) {
    int64_t src = 0;
    bool inside = true;
    for (uint32_t d = 0; d < x.ndim; ++d) {  // negative pads crop first; the modes see the cropped window
      const int64_t lo = std::max<int64_t>(-begins[d], 0), n = x.dims[d] - lo - std::max<int64_t>(-ends[d], 0);
      int64_t i = idx[d] - std::max<int64_t>(begins[d], 0);
      if (i < 0 || i >= n) {
        if (mode == PadMode::kConstant) inside = false;
        else if (mode == PadMode::kEdge) i = i < 0 ? 0 : n - 1;
        else if (mode == PadMode::kWrap) i = (i % n + n) % n;
        else i = i < 0 ? -i : 2 * (n - 1) - i;
      }
      src += (lo + i) * strides[d];
    }
    std::memcpy(y.data + o * es, inside ? x.data + size_t(src) * es : fill, es);
    for (int d = int(y.ndim) - 1; d >= 0; --d) {
      if (++idx[d] < y.dims[d]) break;
      idx[d] = 0;
    }
  }
  return true;
}

bool check_expand(const Op& op, Message* err) {
  Broadcast plan;
  SPX_REQUIRE(make_broadcast(*op.out[0], op.in.data(), 1, &plan),
              "%s does not broadcast to %s", shape_str(*op.in[0]).text, shape_str(*op.out[0]).text);
  return true;
}

namespace {

// n copies of the element at value (sizeof(T) bytes) from y on: a fill loop, not a memcpy call per element.
template <typename T>
void fill_run(uint8_t* y, const uint8_t* value, int64_t n) {
  T v;
  std::memcpy(&v, value, sizeof v);
  std::fill_n(reinterpret_cast<T*>(y), n, v);
}

}  // namespace

bool run_expand(const Op& op, uint8_t*, Message*) {
  Broadcast plan;
  make_broadcast(*op.out[0], op.in.data(), 1, &plan);
  const Tensor& x = *op.in[0];
  const size_t es = sparsec_dtype_size(x.dtype);
  const int64_t s = plan.stride[0][plan.ndim - 1];
  uint8_t* y = op.out[0]->data;
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    uint8_t* out = y + out_off * es;
    const uint8_t* in = x.data + off[0] * es;
    if (s == 1) std::memcpy(out, in, size_t(n) * es);
    else if (es == 8) fill_run<uint64_t>(out, in, n);  // e.g. a pooled gradient spread over its window
    else if (es == 4) fill_run<uint32_t>(out, in, n);
    else for (int64_t i = 0; i < n; ++i) std::memcpy(out + i * es, in, es);
  });
  return true;
}

bool check_cast(const Op& op, Message* err) { return same_numel(op, err); }

template <typename From>
void cast_from(const From* in, const Tensor& y, size_t n) {
  switch (y.dtype) {
    case SPARSEC_FLOAT32: for (size_t i = 0; i < n; ++i) y.as<float>()[i] = float(in[i]); break;
    case SPARSEC_INT64: for (size_t i = 0; i < n; ++i) y.as<int64_t>()[i] = int64_t(in[i]); break;
    case SPARSEC_INT32: for (size_t i = 0; i < n; ++i) y.as<int32_t>()[i] = int32_t(in[i]); break;
    case SPARSEC_UINT8: for (size_t i = 0; i < n; ++i) y.data[i] = uint8_t(in[i]); break;
    case SPARSEC_INT8: for (size_t i = 0; i < n; ++i) y.as<int8_t>()[i] = int8_t(in[i]); break;
    case SPARSEC_BOOL: for (size_t i = 0; i < n; ++i) y.data[i] = in[i] != From(0); break;  // NaN is true
  }
}

bool run_cast(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  switch (x.dtype) {
    case SPARSEC_FLOAT32: cast_from(x.as<const float>(), *op.out[0], x.numel); break;
    case SPARSEC_INT64: cast_from(x.as<const int64_t>(), *op.out[0], x.numel); break;
    case SPARSEC_INT32: cast_from(x.as<const int32_t>(), *op.out[0], x.numel); break;
    case SPARSEC_UINT8: case SPARSEC_BOOL: cast_from(x.as<const uint8_t>(), *op.out[0], x.numel); break;
    case SPARSEC_INT8: cast_from(x.as<const int8_t>(), *op.out[0], x.numel); break;
  }
  return true;
}

bool check_arg_reduce(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const int64_t axis = arg_reduce_attrs(op).axis;
  SPX_REQUIRE(axis < int64_t(x.ndim) && x.dims[axis] > 0, "axis out of range or empty");
  SPX_REQUIRE(op.out[0]->numel == x.numel / size_t(x.dims[axis]), "output size differs from the reduced input");
  return true;
}

template <typename T>
void arg_reduce(const Tensor& x, const ArgReduceAttrs& a, int64_t* out) {
  const size_t axis = size_t(a.axis), len = size_t(x.dims[axis]);
  const size_t outer = product(x.dims, 0, axis), inner = product(x.dims, axis + 1, x.ndim);
  const T* in = x.as<const T>();
  for (size_t o = 0; o < outer; ++o) {
    for (size_t i = 0; i < inner; ++i) {
      const T* row = in + o * len * inner + i;
      size_t best = 0;
      for (size_t k = 1; k < len; ++k) {
        const T v = row[k * inner], b = row[best * inner];
        const bool better = a.kind == ArgKind::kMax ? v > b : v < b;
        if (better || (a.select_last_index && v == b)) best = k;
      }
      out[o * inner + i] = int64_t(best);
    }
  }
}

bool run_arg_reduce(const Op& op, uint8_t*, Message*) {
  const Tensor& x = *op.in[0];
  const ArgReduceAttrs a = arg_reduce_attrs(op);
  int64_t* out = op.out[0]->as<int64_t>();
  switch (x.dtype) {
    case SPARSEC_FLOAT32: arg_reduce<float>(x, a, out); break;
    case SPARSEC_INT64: arg_reduce<int64_t>(x, a, out); break;
    case SPARSEC_INT32: arg_reduce<int32_t>(x, a, out); break;
  }
  return true;
}

}  // namespace sparsec
