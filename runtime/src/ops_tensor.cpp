// Element-wise, reduction and data-movement ops.
#include <algorithm>
#include <cmath>
#include <limits>

#include "op_util.h"
#include "sparsec_rt.h"

namespace sparsec {
namespace {

template <typename F>
void binary_run(const float* a, int64_t sa, const float* b, int64_t sb, float* y, int64_t n, F f) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float bv = *b;
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = *a;
    for (int64_t i = 0; i < n; ++i) y[i] = f(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) y[i] = f(a[i * sa], b[i * sb]);
  }
}

template <typename F>
void binary_all(const Op& op, const Broadcast& plan, F f) {
  const ActParams act = act_from(op, 1);
  const float* a = op.in[0]->f32();
  const float* b = op.in[1]->f32();
  float* y = op.out[0]->f32();
  const int64_t sa = plan.stride[0][plan.ndim - 1], sb = plan.stride[1][plan.ndim - 1];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    binary_run(a + off[0], sa, b + off[1], sb, y + out_off, n, f);
    if (act.kind != Activation::kNone) f32_activation__portable(act, y + out_off, size_t(n));
  });
}

static_assert(int(BinaryOp::kAdd) == int(BinaryKind::kAdd) && int(BinaryOp::kSub) == int(BinaryKind::kSub) &&
                  int(BinaryOp::kMul) == int(BinaryKind::kMul) && int(BinaryOp::kDiv) == int(BinaryKind::kDiv),
              "BinaryOp and BinaryKind share values");

// Add/Sub/Mul/Div through the vbinary microkernels. Innermost runs are contiguous (stride 1) or
// broadcast (stride 0) in each operand: same shape, a [C,1,1] operand per channel, a scalar.
void binary_microkernel(const Op& op, const Broadcast& plan) {
  const int64_t sa = plan.stride[0][plan.ndim - 1], sb = plan.stride[1][plan.ndim - 1];
  const bool both_scalar = sa == 0 && sb == 0;  // computed once and repeated along the run
  const BinaryShape shape = sa != 0 && sb != 0 ? BinaryShape::kVector
                            : sb == 0          ? BinaryShape::kScalarB
                                               : BinaryShape::kScalarA;
  const VBinaryFn kernel = f32_vbinary(static_cast<BinaryKind>(op.iattr[0]), shape);
  const ActParams act = act_from(op, 1);
  const float* a = op.in[0]->f32();
  const float* b = op.in[1]->f32();
  float* y = op.out[0]->f32();
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    float* out = y + out_off;
    kernel(both_scalar ? 1 : size_t(n), a + off[0], b + off[1], out, act);
    if (both_scalar) std::fill(out + 1, out + n, out[0]);
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
  }
  return x;
}

bool same_numel(const Op& op, Message* err) {
  SPX_REQUIRE(op.out[0]->numel == op.in[0]->numel, "output size differs from input");
  return true;
}

}  // namespace

bool check_binary(const Op& op, size_t*, Message* err) {
  if (!check_arity(op, 2, 2, 1, 2, 2, err) || !check_f32(op, err) || !check_activation(op.iattr[1], err)) return false;
  SPX_REQUIRE(op.iattr[0] >= 0 && op.iattr[0] <= int64_t(BinaryOp::kLast), "unknown binary op");
  Broadcast plan;
  SPX_REQUIRE(make_broadcast(*op.out[0], op.in.data(), 2, &plan),
              "shapes %s and %s do not broadcast to %s", shape_str(*op.in[0]).text, shape_str(*op.in[1]).text,
              shape_str(*op.out[0]).text);
  return true;
}

bool run_binary(const Op& op, float*, Message*) {
  Broadcast plan;
  make_broadcast(*op.out[0], op.in.data(), 2, &plan);
  if (op.iattr[0] <= int64_t(BinaryKind::kLast)) {
    binary_microkernel(op, plan);
    return true;
  }
  switch (static_cast<BinaryOp>(op.iattr[0])) {
    case BinaryOp::kPow: binary_all(op, plan, [](float a, float b) { return std::pow(a, b); }); break;
    case BinaryOp::kMax: binary_all(op, plan, [](float a, float b) { return std::max(a, b); }); break;
    case BinaryOp::kMin: binary_all(op, plan, [](float a, float b) { return std::min(a, b); }); break;
    case BinaryOp::kPRelu: binary_all(op, plan, [](float a, float b) { return a < 0.0f ? a * b : a; }); break;
    case BinaryOp::kMod: binary_all(op, plan, [](float a, float b) { return std::fmod(a, b); }); break;
    default: break;  // Add/Sub/Mul/Div went to the microkernels above
  }
  return true;
}

bool check_unary(const Op& op, size_t*, Message* err) {
  if (!check_arity(op, 1, 1, 1, 1, 2, err) || !check_f32(op, err) || !same_numel(op, err)) return false;
  const int64_t k = op.iattr[0];
  SPX_REQUIRE((k >= 0 && k <= int64_t(Activation::kLast)) || (k >= int64_t(UnaryOp::kExp) && k <= int64_t(UnaryOp::kLast)),
              "unknown unary op %lld", static_cast<long long>(k));
  return true;
}

bool run_unary(const Op& op, float*, Message*) {
  const float* x = op.in[0]->f32();
  float* y = op.out[0]->f32();
  const size_t n = op.in[0]->numel;
  if (op.iattr[0] <= int64_t(Activation::kLast)) {
    if (y != x) std::memcpy(y, x, n * sizeof(float));
    f32_activation__scalar(act_from(op, 0), y, n);
  } else {
    const UnaryOp kind = static_cast<UnaryOp>(op.iattr[0]);
    for (size_t i = 0; i < n; ++i) y[i] = unary_math(kind, x[i]);
  }
  return true;
}

bool check_reduce(const Op& op, size_t*, Message* err) {
  if (!check_arity(op, 1, 1, 1, 2, 0, err) || !check_f32(op, err)) return false;
  const Tensor& x = *op.in[0];
  SPX_REQUIRE(op.iattr[0] >= 0 && op.iattr[0] <= int64_t(ReduceKind::kLast), "unknown reduction");
  const int64_t mask = op.iattr[1];
  SPX_REQUIRE(mask >= 0 && mask < (int64_t(1) << x.ndim), "reduction axes out of range");
  size_t kept = 1;
  for (uint32_t d = 0; d < x.ndim; ++d) kept *= (mask >> d) & 1 ? 1 : size_t(x.dims[d]);
  SPX_REQUIRE(op.out[0]->numel == kept, "output size differs from the reduced input");
  return true;
}

// Sum/mean/max/min over trailing axes: each output reduces one contiguous row (GlobalAveragePool).
bool reduce_rows(const Tensor& x, ReduceKind kind, int64_t mask, float* out, size_t n_out) {
  bool reducing = false;
  for (uint32_t d = 0; d < x.ndim; ++d) {
    const bool reduced = (mask >> d) & 1;
    if (x.dims[d] == 1) continue;
    if (reducing && !reduced) return false;
    reducing |= reduced;
  }
  if (kind != ReduceKind::kMean && kind != ReduceKind::kSum && kind != ReduceKind::kMax && kind != ReduceKind::kMin)
    return false;
  const size_t row = x.numel / std::max<size_t>(n_out, 1);
  if (kind == ReduceKind::kMean) {
    f32_gavgpool_cw(n_out, row, x.f32(), out);
    return true;
  }
  for (size_t o = 0; o < n_out; ++o) {
    const float* in = x.f32() + o * row;
    float acc = kind == ReduceKind::kMax || kind == ReduceKind::kMin ? in[0] : 0.0f;
    if (kind == ReduceKind::kMax) for (size_t i = 1; i < row; ++i) acc = std::max(acc, in[i]);
    else if (kind == ReduceKind::kMin) for (size_t i = 1; i < row; ++i) acc = std::min(acc, in[i]);
    else for (size_t i = 0; i < row; ++i) acc += in[i];
    out[o] = acc;
  }
  return true;
}

bool run_reduce(const Op& op, float*, Message*) {
  const Tensor& x = *op.in[0];
  const ReduceKind kind = static_cast<ReduceKind>(op.iattr[0]);
  const int64_t mask = op.iattr[1];
  if (x.numel > 0 && reduce_rows(x, kind, mask, op.out[0]->f32(), op.out[0]->numel)) return true;
  int64_t strides[kMaxDims];
  contiguous_strides(x, strides);
  // Split dims into kept (outer odometer) and reduced (inner odometer).
  int64_t kept_dims[kMaxDims], kept_strides[kMaxDims], red_dims[kMaxDims], red_strides[kMaxDims];
  size_t nk = 0, nr = 0, count = 1;
  for (uint32_t d = 0; d < x.ndim; ++d) {
    if ((mask >> d) & 1) {
      red_dims[nr] = x.dims[d];
      red_strides[nr++] = strides[d];
      count *= size_t(x.dims[d]);
    } else {
      kept_dims[nk] = x.dims[d];
      kept_strides[nk++] = strides[d];
    }
  }
  const float* in = x.f32();
  float* out = op.out[0]->f32();
  const size_t n_out = op.out[0]->numel;
  int64_t kidx[kMaxDims] = {};
  size_t base = 0;
  for (size_t o = 0; o < n_out; ++o) {
    double acc = kind == ReduceKind::kProd ? 1.0 : 0.0;
    float best = kind == ReduceKind::kMax ? -std::numeric_limits<float>::infinity() : std::numeric_limits<float>::infinity();
    float max_for_lse = -std::numeric_limits<float>::infinity();
    if (kind == ReduceKind::kLogSumExp) {
      // First pass for the max keeps exp() in range.
      int64_t ridx[kMaxDims] = {};
      size_t off = base;
      for (size_t i = 0; i < count; ++i) {
        max_for_lse = std::max(max_for_lse, in[off]);
        for (int d = int(nr) - 1; d >= 0; --d) {
          off += red_strides[d];
          if (++ridx[d] < red_dims[d]) break;
          off -= red_strides[d] * red_dims[d];
          ridx[d] = 0;
        }
      }
    }
    int64_t ridx[kMaxDims] = {};
    size_t off = base;
    for (size_t i = 0; i < count; ++i) {
      const float v = in[off];
      switch (kind) {
        case ReduceKind::kMean: case ReduceKind::kSum: acc += v; break;
        case ReduceKind::kMax: best = std::max(best, v); break;
        case ReduceKind::kMin: best = std::min(best, v); break;
        case ReduceKind::kProd: acc *= v; break;
        case ReduceKind::kL1: acc += std::fabs(v); break;
        case ReduceKind::kL2: case ReduceKind::kSumSquare: acc += double(v) * v; break;
        case ReduceKind::kLogSumExp: acc += std::exp(double(v - max_for_lse)); break;
      }
      for (int d = int(nr) - 1; d >= 0; --d) {
        off += red_strides[d];
        if (++ridx[d] < red_dims[d]) break;
        off -= red_strides[d] * red_dims[d];
        ridx[d] = 0;
      }
    }
    switch (kind) {
      case ReduceKind::kMean: out[o] = float(acc / double(count)); break;
      case ReduceKind::kMax: case ReduceKind::kMin: out[o] = best; break;
      case ReduceKind::kL2: out[o] = float(std::sqrt(acc)); break;
      case ReduceKind::kLogSumExp: out[o] = float(std::log(acc)) + max_for_lse; break;
      default: out[o] = float(acc);
    }
    for (int d = int(nk) - 1; d >= 0; --d) {
      base += kept_strides[d];
      if (++kidx[d] < kept_dims[d]) break;
      base -= kept_strides[d] * kept_dims[d];
      kidx[d] = 0;
    }
  }
  return true;
}

bool check_transpose(const Op& op, size_t*, Message* err) {
  const Tensor& x = *op.in[0];
  if (!check_arity(op, 1, 1, 1, x.ndim, 0, err)) return false;
  const Tensor& y = *op.out[0];
  SPX_REQUIRE(y.ndim == x.ndim && y.dtype == x.dtype, "output rank or dtype differs from input");
  bool seen[kMaxDims] = {};
  for (uint32_t d = 0; d < x.ndim; ++d) {
    const int64_t p = op.iattr[d];
    SPX_REQUIRE(p >= 0 && p < int64_t(x.ndim) && !seen[p], "perm is not a permutation");
    seen[p] = true;
    SPX_REQUIRE(y.dims[d] == x.dims[p], "output %s is not the permuted input %s", shape_str(y).text, shape_str(x).text);
  }
  return true;
}

bool run_transpose(const Op& op, float*, Message*) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const size_t es = x.nbytes / std::max<size_t>(x.numel, 1);
  int64_t in_strides[kMaxDims], src_strides[kMaxDims];
  contiguous_strides(x, in_strides);
  for (uint32_t d = 0; d < x.ndim; ++d) src_strides[d] = in_strides[op.iattr[d]];
  Broadcast plan;  // walk the output in order; one operand = the permuted input
  plan.n_operands = 1;
  plan.ndim = y.ndim == 0 ? 1 : y.ndim;
  for (size_t d = 0; d < plan.ndim; ++d) {
    plan.dims[d] = y.ndim == 0 ? 1 : y.dims[d];
    plan.stride[0][d] = y.ndim == 0 ? 0 : src_strides[d];
  }
  const int64_t s = plan.stride[0][plan.ndim - 1];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    if (es == 4) {
      const float* src = x.f32() + off[0];
      float* dst = y.f32() + out_off;
      for (int64_t i = 0; i < n; ++i) dst[i] = src[i * s];
    } else {
      for (int64_t i = 0; i < n; ++i) std::memcpy(y.data + (out_off + i) * es, x.data + (off[0] + i * s) * es, es);
    }
  });
  return true;
}

bool check_copy(const Op& op, size_t*, Message* err) {
  if (!check_arity(op, 1, 1, 1, 0, 0, err)) return false;
  SPX_REQUIRE(op.out[0]->nbytes == op.in[0]->nbytes && op.out[0]->dtype == op.in[0]->dtype, "output size differs from input");
  return true;
}

bool run_copy(const Op& op, float*, Message*) {
  if (op.out[0]->data != op.in[0]->data) std::memmove(op.out[0]->data, op.in[0]->data, op.in[0]->nbytes);
  return true;
}

// Concat and Split share one check: the many side's dims equal the one side's except along axis.
bool check_joined(const Tensor& whole, const Tensor* const* parts, size_t n, int64_t axis, Message* err) {
  SPX_REQUIRE(axis >= 0 && axis < int64_t(whole.ndim), "axis out of range");
  int64_t total = 0;
  for (size_t i = 0; i < n; ++i) {
    const Tensor& p = *parts[i];
    SPX_REQUIRE(p.ndim == whole.ndim && p.dtype == whole.dtype, "parts differ in rank or dtype");
    for (uint32_t d = 0; d < whole.ndim; ++d)
      SPX_REQUIRE(int64_t(d) == axis || p.dims[d] == whole.dims[d], "part %s does not fit %s", shape_str(p).text,
                  shape_str(whole).text);
    total += p.dims[axis];
  }
  SPX_REQUIRE(total == whole.dims[axis], "parts do not add up along the axis");
  return true;
}

bool check_concat(const Op& op, size_t*, Message* err) {
  if (!check_arity(op, 1, 1u << 16, 1, 1, 0, err)) return false;
  for (const Tensor* t : op.in) SPX_REQUIRE(t != nullptr, "a required input is missing");
  return check_joined(*op.out[0], op.in.data(), op.in.size(), op.iattr[0], err);
}

bool check_split(const Op& op, size_t*, Message* err) {
  if (!check_arity(op, 1, 1, 0, 1, 0, err)) return false;
  return check_joined(*op.in[0], op.out.data(), op.out.size(), op.iattr[0], err);
}

// Moves bytes between the whole tensor and its parts along axis (to_whole: concat, else split).
void move_parts(const Tensor& whole, const Tensor* const* parts, size_t n, int64_t axis, bool to_whole) {
  const size_t es = whole.nbytes / std::max<size_t>(whole.numel, 1);
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

bool run_concat(const Op& op, float*, Message*) {
  move_parts(*op.out[0], op.in.data(), op.in.size(), op.iattr[0], true);
  return true;
}

bool run_split(const Op& op, float*, Message*) {
  move_parts(*op.in[0], op.out.data(), op.out.size(), op.iattr[0], false);
  return true;
}

bool check_slice(const Op& op, size_t*, Message* err) {
  const Tensor& x = *op.in[0];
  if (!check_arity(op, 1, 1, 1, 2 * x.ndim, 0, err)) return false;
  const Tensor& y = *op.out[0];
  SPX_REQUIRE(y.ndim == x.ndim && y.dtype == x.dtype, "output rank or dtype differs from input");
  for (uint32_t d = 0; d < x.ndim; ++d) {
    const int64_t start = op.iattr[d], step = op.iattr[x.ndim + d];
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

bool run_slice(const Op& op, float*, Message*) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  if (y.numel == 0) return true;
  const size_t es = x.nbytes / std::max<size_t>(x.numel, 1);
  int64_t strides[kMaxDims];
  contiguous_strides(x, strides);
  int64_t start = 0;
  Broadcast plan;
  plan.n_operands = 1;
  plan.ndim = std::max<uint32_t>(y.ndim, 1);
  for (size_t d = 0; d < plan.ndim; ++d) {
    plan.dims[d] = y.ndim ? y.dims[d] : 1;
    plan.stride[0][d] = y.ndim ? strides[d] * op.iattr[y.ndim + d] : 0;
    if (y.ndim) start += op.iattr[d] * strides[d];
  }
  const int64_t s = plan.stride[0][plan.ndim - 1];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(y.data + (out_off + i) * es, x.data + (start + off[0] + i * s) * es, es);
  });
  return true;
}

bool check_gather(const Op& op, size_t*, Message* err) {
  if (!check_arity(op, 2, 2, 1, 1, 0, err)) return false;
  const Tensor& data = *op.in[0];
  const Tensor& idx = *op.in[1];
  const Tensor& y = *op.out[0];
  const int64_t axis = op.iattr[0];
  SPX_REQUIRE(axis >= 0 && axis < int64_t(data.ndim), "axis out of range");
  SPX_REQUIRE(idx.dtype == SPARSEC_I64 || idx.dtype == SPARSEC_I32, "indices must be int64 or int32");
  SPX_REQUIRE(y.dtype == data.dtype && y.ndim == data.ndim - 1 + idx.ndim, "output rank or dtype is wrong");
  uint32_t d = 0;
  for (int64_t i = 0; i < axis; ++i) SPX_REQUIRE(y.dims[d++] == data.dims[i], "output shape is wrong");
  for (uint32_t i = 0; i < idx.ndim; ++i) SPX_REQUIRE(y.dims[d++] == idx.dims[i], "output shape is wrong");
  for (uint32_t i = uint32_t(axis) + 1; i < data.ndim; ++i) SPX_REQUIRE(y.dims[d++] == data.dims[i], "output shape is wrong");
  return true;
}

bool run_gather(const Op& op, float*, Message* err) {
  const Tensor& data = *op.in[0];
  const Tensor& idx = *op.in[1];
  const size_t axis = size_t(op.iattr[0]);
  const size_t es = data.nbytes / std::max<size_t>(data.numel, 1);
  const size_t outer = product(data.dims, 0, axis), inner = product(data.dims, axis + 1, data.ndim) * es;
  const int64_t extent = data.dims[axis];
  uint8_t* out = op.out[0]->data;
  for (size_t o = 0; o < outer; ++o) {
    for (size_t i = 0; i < idx.numel; ++i) {
      const int64_t given = idx.dtype == SPARSEC_I64 ? reinterpret_cast<const int64_t*>(idx.data)[i]
                                                     : reinterpret_cast<const int32_t*>(idx.data)[i];
      const int64_t k = given < 0 ? given + extent : given;
      SPX_REQUIRE(k >= 0 && k < extent, "index %lld out of range [%lld, %lld)", static_cast<long long>(given),
                  static_cast<long long>(-extent), static_cast<long long>(extent));
      std::memcpy(out, data.data + (o * size_t(extent) + size_t(k)) * inner, inner);
      out += inner;
    }
  }
  return true;
}

bool check_pad(const Op& op, size_t*, Message* err) {
  const Tensor& x = *op.in[0];
  if (!check_arity(op, 1, 1, 1, 1 + 2 * x.ndim, 1, err) || !check_f32(op, err)) return false;
  const Tensor& y = *op.out[0];
  SPX_REQUIRE(op.iattr[0] >= 0 && op.iattr[0] <= int64_t(PadMode::kLast), "unknown pad mode");
  SPX_REQUIRE(y.ndim == x.ndim, "output rank differs from input");
  for (uint32_t d = 0; d < x.ndim; ++d) {
    const int64_t b = op.iattr[1 + d], e = op.iattr[1 + x.ndim + d];
    SPX_REQUIRE(b >= 0 && e >= 0 && y.dims[d] == x.dims[d] + b + e, "output %s is not the padded input", shape_str(y).text);
    SPX_REQUIRE(op.iattr[0] != int64_t(PadMode::kReflect) || (b < x.dims[d] && e < x.dims[d]), "reflect pad wider than input");
    SPX_REQUIRE(op.iattr[0] == int64_t(PadMode::kConstant) || x.dims[d] > 0 || y.dims[d] == 0, "edge pad of an empty axis");
  }
  return true;
}

bool run_pad(const Op& op, float*, Message*) {
  const Tensor& x = *op.in[0];
  const Tensor& y = *op.out[0];
  const PadMode mode = static_cast<PadMode>(op.iattr[0]);
  int64_t strides[kMaxDims], idx[kMaxDims] = {};
  contiguous_strides(x, strides);
  for (size_t o = 0; o < y.numel; ++o) {
    int64_t src = 0;
    bool inside = true;
    for (uint32_t d = 0; d < x.ndim; ++d) {
      int64_t i = idx[d] - op.iattr[1 + d];
      const int64_t n = x.dims[d];
      if (i < 0 || i >= n) {
        if (mode == PadMode::kConstant) inside = false;
        else if (mode == PadMode::kEdge) i = i < 0 ? 0 : n - 1;
        else i = i < 0 ? -i : 2 * (n - 1) - i;
      }
      src += i * strides[d];
    }
    y.f32()[o] = inside ? x.f32()[src] : op.fattr[0];
    for (int d = int(y.ndim) - 1; d >= 0; --d) {
      if (++idx[d] < y.dims[d]) break;
      idx[d] = 0;
    }
  }
  return true;
}

bool check_expand(const Op& op, size_t*, Message* err) {
  if (!check_arity(op, 1, 1, 1, 0, 0, err)) return false;
  SPX_REQUIRE(op.out[0]->dtype == op.in[0]->dtype, "output dtype differs from input");
  Broadcast plan;
  SPX_REQUIRE(make_broadcast(*op.out[0], op.in.data(), 1, &plan),
              "%s does not broadcast to %s", shape_str(*op.in[0]).text, shape_str(*op.out[0]).text);
  return true;
}

bool run_expand(const Op& op, float*, Message*) {
  Broadcast plan;
  make_broadcast(*op.out[0], op.in.data(), 1, &plan);
  const Tensor& x = *op.in[0];
  const size_t es = x.nbytes / std::max<size_t>(x.numel, 1);
  const int64_t s = plan.stride[0][plan.ndim - 1];
  uint8_t* y = op.out[0]->data;
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    if (s == 1) std::memcpy(y + out_off * es, x.data + off[0] * es, size_t(n) * es);
    else for (int64_t i = 0; i < n; ++i) std::memcpy(y + (out_off + i) * es, x.data + off[0] * es, es);
  });
  return true;
}

bool check_cast(const Op& op, size_t*, Message* err) {
  return check_arity(op, 1, 1, 1, 0, 0, err) && same_numel(op, err);
}

template <typename From>
void cast_from(const From* in, const Tensor& y, size_t n) {
  switch (y.dtype) {
    case SPARSEC_F32: for (size_t i = 0; i < n; ++i) reinterpret_cast<float*>(y.data)[i] = float(in[i]); break;
    case SPARSEC_I64: for (size_t i = 0; i < n; ++i) reinterpret_cast<int64_t*>(y.data)[i] = int64_t(in[i]); break;
    case SPARSEC_I32: for (size_t i = 0; i < n; ++i) reinterpret_cast<int32_t*>(y.data)[i] = int32_t(in[i]); break;
    case SPARSEC_U8: for (size_t i = 0; i < n; ++i) y.data[i] = uint8_t(in[i]); break;
    case SPARSEC_I8: for (size_t i = 0; i < n; ++i) reinterpret_cast<int8_t*>(y.data)[i] = int8_t(in[i]); break;
  }
}

bool run_cast(const Op& op, float*, Message*) {
  const Tensor& x = *op.in[0];
  switch (x.dtype) {
    case SPARSEC_F32: cast_from(reinterpret_cast<const float*>(x.data), *op.out[0], x.numel); break;
    case SPARSEC_I64: cast_from(reinterpret_cast<const int64_t*>(x.data), *op.out[0], x.numel); break;
    case SPARSEC_I32: cast_from(reinterpret_cast<const int32_t*>(x.data), *op.out[0], x.numel); break;
    case SPARSEC_U8: cast_from(x.data, *op.out[0], x.numel); break;
    case SPARSEC_I8: cast_from(reinterpret_cast<const int8_t*>(x.data), *op.out[0], x.numel); break;
  }
  return true;
}

}  // namespace sparsec
