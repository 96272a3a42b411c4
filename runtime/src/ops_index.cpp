// Logic, comparison, selection and index ops: Compare, Bitwise, Where, Range, Cumulative, TopK, GatherElements,
// ScatterElements, GatherND, ScatterND, BitCast. Integers and bools are exact; every index is range-checked.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "op_util.h"
#include "sparsec_rt.h"

namespace sparsec {
namespace {

// A possibly negative index into an axis of this extent; false when out of range.
bool resolve_index(int64_t given, int64_t extent, int64_t* k) {
  *k = given < 0 ? given + extent : given;
  return *k >= 0 && *k < extent;
}

bool check_broadcast(const Op& op, size_t n, Message* err) {
  Broadcast plan;
  SPX_REQUIRE(make_broadcast(*op.out[0], op.in.data(), n, &plan), "inputs do not broadcast to the output %s",
              shape_str(*op.out[0]).text);
  return true;
}

// Calls f(out, a, b) with the element offsets of each output element and its two broadcast operands.
template <typename F>
void each_pair(const Op& op, F f) {
  Broadcast plan;
  make_broadcast(*op.out[0], op.in.data(), 2, &plan);
  const int64_t sa = plan.stride[0][plan.ndim - 1], sb = plan.stride[1][plan.ndim - 1];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; ++i) f(out_off + size_t(i), size_t(off[0] + i * sa), size_t(off[1] + i * sb));
  });
}

// -1, 0 or 1 as a is below, equal to or above b; 2 when unordered (a NaN).
int order(float a, float b) { return a < b ? -1 : a > b ? 1 : a == b ? 0 : 2; }
int order(int64_t a, int64_t b) { return a < b ? -1 : a > b ? 1 : 0; }

// Whether each CompareOp holds for an order of -1, 0, 1, 2 (NaN compares false).
constexpr uint8_t kCompareTruth[5][4] = {{0, 1, 0, 0}, {1, 0, 0, 0}, {0, 0, 1, 0}, {1, 1, 0, 0}, {0, 1, 1, 0}};

// On widened operands (see load_integer): the low `bits` of the result are the narrow type's result.
int64_t bitwise(BitwiseOp kind, int64_t a, int64_t b, int bits) {
  switch (kind) {
    case BitwiseOp::kAnd: return a & b;
    case BitwiseOp::kOr: return a | b;
    case BitwiseOp::kXor: return a ^ b;
    default: break;
  }
  if (b < 0 || b >= bits) return kind == BitwiseOp::kShiftRight && a < 0 ? -1 : 0;
  if (kind == BitwiseOp::kShiftLeft) return int64_t(uint64_t(a) << b);
  return a < 0 ? ~int64_t(~uint64_t(a) >> b) : int64_t(uint64_t(a) >> b);  // arithmetic, not implementation-defined
}

// Walks an index tensor's elements with their multi-index (odometer over dims).
struct Odometer {
  int64_t idx[kMaxDims] = {};
  void next(const Tensor& t) {
    for (int d = int(t.ndim) - 1; d >= 0; --d) {
      if (++idx[d] < t.dims[d]) return;
      idx[d] = 0;
    }
  }
};

// The offset in data of element `pos` of an Elements op's index tensor, with index k along axis.
size_t element_offset(const int64_t* pos, const int64_t* data_strides, uint32_t ndim, size_t axis, int64_t k) {
  size_t off = 0;
  for (uint32_t d = 0; d < ndim; ++d) off += size_t(d == axis ? k : pos[d]) * size_t(data_strides[d]);
  return off;
}

template <typename T>
T reduce_into(ScatterReduction r, T old, T update) {
  switch (r) {
    case ScatterReduction::kNone: return update;
    case ScatterReduction::kAdd:
      return std::is_floating_point<T>::value ? T(old + update) : T(uint64_t(old) + uint64_t(update));
    case ScatterReduction::kMul:
      return std::is_floating_point<T>::value ? T(old * update) : T(uint64_t(old) * uint64_t(update));
    case ScatterReduction::kMax: return std::max(old, update);
    case ScatterReduction::kMin: return std::min(old, update);
  }
  return update;
}

// y[dst] (op)= updates[src] for any dtype.
void scatter_one(const Tensor& y, const Tensor& updates, size_t dst, size_t src, ScatterReduction r) {
  if (y.dtype == SPARSEC_FLOAT32) {
    y.f32()[dst] = reduce_into(r, y.f32()[dst], updates.f32()[src]);
  } else {
    store_integer(y.data, y.dtype, dst, reduce_into(r, load_integer(y.data, y.dtype, dst),
                                                    load_integer(updates.data, updates.dtype, src)));
  }
}

bool check_elements(const Tensor& data, const Tensor& indices, int64_t axis, Message* err) {
  SPX_REQUIRE(indices.ndim == data.ndim && axis < int64_t(data.ndim), "indices %s and data %s differ in rank",
              shape_str(indices).text, shape_str(data).text);
  for (uint32_t d = 0; d < data.ndim; ++d)
    SPX_REQUIRE(int64_t(d) == axis || indices.dims[d] <= data.dims[d], "indices %s exceed data %s",
                shape_str(indices).text, shape_str(data).text);
  return true;
}

}  // namespace

bool check_compare(const Op& op, Message* err) { return check_broadcast(op, 2, err); }

bool run_compare(const Op& op, uint8_t*, Message*) {
  const uint8_t* truth = kCompareTruth[size_t(compare_attrs(op).op)];
  const Tensor& a = *op.in[0];
  const Tensor& b = *op.in[1];
  const bool is_float = a.dtype == SPARSEC_FLOAT32;
  uint8_t* y = op.out[0]->data;
  each_pair(op, [&](size_t o, size_t i, size_t j) {
    y[o] = truth[1 + (is_float ? order(a.f32()[i], b.f32()[j])
                               : order(load_integer(a.data, a.dtype, i), load_integer(b.data, b.dtype, j)))];
  });
  return true;
}

bool check_bitwise(const Op& op, Message* err) {
  const BitwiseOp kind = bitwise_attrs(op).op;
  SPX_REQUIRE(op.in[0]->dtype != SPARSEC_BOOL || kind == BitwiseOp::kAnd || kind == BitwiseOp::kOr ||
                  kind == BitwiseOp::kXor, "bool operands take AND, OR and XOR only");
  return check_broadcast(op, 2, err);
}

bool run_bitwise(const Op& op, uint8_t*, Message*) {
  const BitwiseOp kind = bitwise_attrs(op).op;
  const Tensor& a = *op.in[0];
  const Tensor& b = *op.in[1];
  const Tensor& y = *op.out[0];
  const int bits = int(sparsec_dtype_size(a.dtype)) * 8;
  each_pair(op, [&](size_t o, size_t i, size_t j) {
    const int64_t u = load_integer(a.data, a.dtype, i), v = load_integer(b.data, b.dtype, j);
    store_integer(y.data, y.dtype, o, bitwise(kind, u, v, bits));
  });
  return true;
}

bool check_where(const Op& op, Message* err) { return check_broadcast(op, 3, err); }

bool run_where(const Op& op, uint8_t*, Message*) {
  Broadcast plan;
  make_broadcast(*op.out[0], op.in.data(), 3, &plan);
  const size_t es = sparsec_dtype_size(op.out[0]->dtype);
  const uint8_t* c = op.in[0]->data;
  const uint8_t* x = op.in[1]->data;
  const uint8_t* y = op.in[2]->data;
  uint8_t* z = op.out[0]->data;
  const size_t last = plan.ndim - 1;
  const int64_t sc = plan.stride[0][last], sx = plan.stride[1][last], sy = plan.stride[2][last];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(z + (out_off + size_t(i)) * es,
                  c[off[0] + i * sc] ? x + size_t(off[1] + i * sx) * es : y + size_t(off[2] + i * sy) * es, es);
  });
  return true;
}

bool check_range(const Op& op, Message* err) {
  for (size_t i = 0; i < 3; ++i) SPX_REQUIRE(op.in[i]->numel == 1, "start, limit and delta must be scalars");
  SPX_REQUIRE(op.out[0]->ndim == 1, "the output must be 1-D");
  return true;
}

// y[i] = start + i * delta; the count (ceil((limit - start) / delta), at least 0) must be the output's.
bool run_range(const Op& op, uint8_t*, Message* err) {
  const Tensor& y = *op.out[0];
  const bool is_float = y.dtype == SPARSEC_FLOAT32;
  const float fstart = is_float ? op.in[0]->f32()[0] : 0.0f, fdelta = is_float ? op.in[2]->f32()[0] : 0.0f;
  const int64_t start = is_float ? 0 : load_integer(op.in[0]->data, y.dtype, 0);
  const int64_t limit = is_float ? 0 : load_integer(op.in[1]->data, y.dtype, 0);
  const int64_t delta = is_float ? 0 : load_integer(op.in[2]->data, y.dtype, 0);
  SPX_REQUIRE(is_float ? fdelta != 0.0f : delta != 0, "Range: delta is zero");
  const int64_t diff = int64_t(uint64_t(limit) - uint64_t(start));
  const int64_t count =
      is_float ? int64_t(std::max(std::ceil((double(op.in[1]->f32()[0]) - fstart) / fdelta), 0.0))
      : delta > 0 ? (diff > 0 ? (diff + delta - 1) / delta : 0)
                  : (diff < 0 ? (diff + delta + 1) / delta : 0);
  SPX_REQUIRE(count == y.dims[0], "Range: start, limit and delta give %lld elements; the model declared %lld",
              static_cast<long long>(count), static_cast<long long>(y.dims[0]));
  for (int64_t i = 0; i < count; ++i) {
    if (is_float) y.f32()[i] = fstart + float(i) * fdelta;
    else store_integer(y.data, y.dtype, size_t(i), int64_t(uint64_t(start) + uint64_t(i) * uint64_t(delta)));
  }
  return true;
}

bool check_cumulative(const Op& op, Message* err) {
  const Tensor* axis = optional_input(op, 1);
  SPX_REQUIRE(axis ? axis->numel == 1 : cumulative_attrs(op).axis < int64_t(op.in[0]->ndim), "axis out of range");
  SPX_REQUIRE(op.in[0]->ndim > 0, "the input is a scalar");
  return same_numel(op, err);
}

bool run_cumulative(const Op& op, uint8_t*, Message* err) {
  const Tensor& x = *op.in[0];
  const CumulativeAttrs a = cumulative_attrs(op);
  int64_t axis_at_run = a.axis;
  if (const Tensor* given = optional_input(op, 1))
    SPX_REQUIRE(resolve_index(index_value(*given, 0), x.ndim, &axis_at_run), "axis %lld out of range for rank %u",
                static_cast<long long>(index_value(*given, 0)), x.ndim);
  const size_t axis = size_t(axis_at_run), len = size_t(x.dims[axis]);
  const size_t outer = product(x.dims, 0, axis), inner = product(x.dims, axis + 1, x.ndim);
  const bool sum = a.kind == CumulativeKind::kSum, is_float = x.dtype == SPARSEC_FLOAT32;
  const Tensor& y = *op.out[0];
  for (size_t o = 0; o < outer; ++o) {
    for (size_t i = 0; i < inner; ++i) {
      float facc = sum ? 0.0f : 1.0f;  // float32 accumulates in float32, as onnxruntime does
      int64_t iacc = sum ? 0 : 1;
      for (size_t s = 0; s < len; ++s) {
        const size_t k = a.reverse ? len - 1 - s : s, at = (o * len + k) * inner + i;
        if (is_float) {
          const float v = x.f32()[at];
          if (a.exclusive) y.f32()[at] = facc;
          facc = sum ? facc + v : facc * v;
          if (!a.exclusive) y.f32()[at] = facc;
        } else {
          const int64_t v = load_integer(x.data, x.dtype, at);
          if (a.exclusive) store_integer(y.data, y.dtype, at, iacc);
          iacc = int64_t(sum ? uint64_t(iacc) + uint64_t(v) : uint64_t(iacc) * uint64_t(v));
          if (!a.exclusive) store_integer(y.data, y.dtype, at, iacc);
        }
      }
    }
  }
  return true;
}

bool check_top_k(const Op& op, Message* err) {
  const Tensor& x = *op.in[0];
  const int64_t axis = top_k_attrs(op).axis;
  SPX_REQUIRE(axis < int64_t(x.ndim), "axis out of range");
  for (size_t k = 0; k < 2; ++k) {
    const Tensor& y = *op.out[k];
    SPX_REQUIRE(y.ndim == x.ndim, "outputs differ in rank from the input");
    for (uint32_t d = 0; d < x.ndim; ++d)
      SPX_REQUIRE(int64_t(d) == axis ? y.dims[d] <= x.dims[d] : y.dims[d] == x.dims[d],
                  "output %s does not select from input %s", shape_str(y).text, shape_str(x).text);
  }
  SPX_REQUIRE(op.scratch_bytes >= uint64_t(x.dims[axis]) * sizeof(uint32_t), "scratch too small");
  SPX_REQUIRE(!optional_input(op, 1) || op.in[1]->numel == 1, "k must hold one value");
  return true;
}

bool run_top_k(const Op& op, uint8_t* scratch, Message* err) {
  const Tensor& x = *op.in[0];
  const TopKAttrs a = top_k_attrs(op);
  const size_t axis = size_t(a.axis), len = size_t(x.dims[axis]), k = size_t(op.out[0]->dims[axis]);
  if (const Tensor* given = optional_input(op, 1))
    SPX_REQUIRE(index_value(*given, 0) == int64_t(k), "TopK: k = %lld; the model declared %zu",
                static_cast<long long>(index_value(*given, 0)), k);
  const size_t outer = product(x.dims, 0, axis), inner = product(x.dims, axis + 1, x.ndim);
  const size_t es = sparsec_dtype_size(x.dtype);
  const bool is_float = x.dtype == SPARSEC_FLOAT32;
  int64_t* indices = op.out[1]->as<int64_t>();
  uint32_t* best = reinterpret_cast<uint32_t*>(scratch);  // the k best positions so far, in order
  for (size_t o = 0; o < outer; ++o) {
    for (size_t i = 0; i < inner; ++i) {
      const size_t base = o * len * inner + i;
      // A strict total order: NaN above every number, then ties by the lower index (as onnxruntime).
      auto before = [&](size_t p, size_t q) {
        if (is_float) {
          const float u = x.f32()[base + p * inner], v = x.f32()[base + q * inner];
          const bool nu = u != u, nv = v != v;
          if (nu != nv) return a.largest ? nu : nv;
          if (!nu && u != v) return a.largest ? u > v : u < v;
        } else {
          const int64_t u = load_integer(x.data, x.dtype, base + p * inner);
          const int64_t v = load_integer(x.data, x.dtype, base + q * inner);
          if (u != v) return a.largest ? u > v : u < v;
        }
        return p < q;
      };
      size_t count = 0;
      for (size_t s = 0; s < len; ++s) {  // insertion into the sorted k best: O(len * k), no sort code
        if (count == k && (k == 0 || !before(s, best[k - 1]))) continue;
        size_t at = count < k ? count++ : k - 1;
        for (; at > 0 && before(s, best[at - 1]); --at) best[at] = best[at - 1];
        best[at] = uint32_t(s);
      }
      for (size_t s = 0; s < k; ++s) {
        const size_t out = (o * k + s) * inner + i;
        std::memcpy(op.out[0]->data + out * es, x.data + (base + best[s] * inner) * es, es);
        indices[out] = int64_t(best[s]);
      }
    }
  }
  return true;
}

bool check_gather_elements(const Op& op, Message* err) {
  SPX_REQUIRE(same_shape(*op.in[1], *op.out[0]), "output shape differs from the indices'");
  return check_elements(*op.in[0], *op.in[1], gather_elements_attrs(op).axis, err);
}

// Calls visit(i, offset in data) for element i of indices, its index taken along axis; false on one out of range.
template <typename F>
bool each_element_target(const Tensor& data, const Tensor& indices, size_t axis, const char* what, Message* err,
                         F visit) {
  int64_t strides[kMaxDims];
  contiguous_strides(data, strides);
  Odometer pos;
  for (size_t i = 0; i < indices.numel; ++i, pos.next(indices)) {
    int64_t k;
    SPX_REQUIRE(resolve_index(index_value(indices, i), data.dims[axis], &k), "%s: index %lld out of range", what,
                static_cast<long long>(index_value(indices, i)));
    visit(i, element_offset(pos.idx, strides, data.ndim, axis, k));
  }
  return true;
}

bool run_gather_elements(const Op& op, uint8_t*, Message* err) {
  const Tensor& data = *op.in[0];
  const size_t es = sparsec_dtype_size(data.dtype);
  return each_element_target(data, *op.in[1], size_t(gather_elements_attrs(op).axis), "GatherElements", err,
                             [&](size_t i, size_t from) {
                               std::memcpy(op.out[0]->data + i * es, data.data + from * es, es);
                             });
}

bool check_scatter_elements(const Op& op, Message* err) {
  SPX_REQUIRE(same_shape(*op.in[0], *op.out[0]), "output shape differs from the data's");
  SPX_REQUIRE(same_shape(*op.in[1], *op.in[2]), "updates and indices differ in shape");
  return check_elements(*op.in[0], *op.in[1], scatter_elements_attrs(op).axis, err);
}

bool run_scatter_elements(const Op& op, uint8_t*, Message* err) {
  const Tensor& data = *op.in[0];
  const ScatterElementsAttrs a = scatter_elements_attrs(op);
  if (op.out[0]->data != data.data) std::memmove(op.out[0]->data, data.data, data.nbytes);
  return each_element_target(data, *op.in[1], size_t(a.axis), "ScatterElements", err,
                             [&](size_t i, size_t to) { scatter_one(*op.out[0], *op.in[2], to, i, a.reduction); });
}

namespace {
// GatherND/ScatterND geometry: batches, index tuples per batch, tuple length, elements per slice.
struct NdPlan {
  size_t batches, tuples, depth, slice, batch_stride;
  int64_t strides[kMaxDims];
};

bool nd_plan(const Tensor& data, const Tensor& indices, size_t batch_dims, NdPlan* p, Message* err) {
  SPX_REQUIRE(indices.ndim >= 1 && batch_dims < indices.ndim && batch_dims < data.ndim, "batch_dims out of range");
  p->depth = size_t(indices.dims[indices.ndim - 1]);
  SPX_REQUIRE(batch_dims + p->depth <= data.ndim, "index tuples longer than the data's rank");
  for (size_t d = 0; d < batch_dims; ++d)
    SPX_REQUIRE(indices.dims[d] == data.dims[d], "batch dims of indices and data differ");
  p->batches = product(data.dims, 0, batch_dims);
  p->tuples = product(indices.dims, batch_dims, indices.ndim - 1);
  p->slice = product(data.dims, batch_dims + p->depth, data.ndim);
  p->batch_stride = product(data.dims, batch_dims, data.ndim);
  contiguous_strides(data, p->strides);
  return true;
}

// The data offset (in elements) of tuple t of batch n; false when an index is out of range.
bool nd_offset(const Tensor& data, const Tensor& indices, const NdPlan& p, size_t batch_dims, size_t n, size_t t,
               size_t* off) {
  *off = n * p.batch_stride;
  for (size_t j = 0; j < p.depth; ++j) {
    int64_t k;
    const int64_t given = index_value(indices, (n * p.tuples + t) * p.depth + j);
    if (!resolve_index(given, data.dims[batch_dims + j], &k)) return false;
    *off += size_t(k) * size_t(p.strides[batch_dims + j]);
  }
  return true;
}
}  // namespace

bool check_gather_n_d(const Op& op, Message* err) {
  NdPlan p;
  if (!nd_plan(*op.in[0], *op.in[1], size_t(gather_n_d_attrs(op).batch_dims), &p, err)) return false;
  SPX_REQUIRE(op.out[0]->numel == p.batches * p.tuples * p.slice, "output size is wrong");
  return true;
}

bool run_gather_n_d(const Op& op, uint8_t*, Message* err) {
  const Tensor& data = *op.in[0];
  const size_t batch_dims = size_t(gather_n_d_attrs(op).batch_dims), es = sparsec_dtype_size(data.dtype);
  NdPlan p;
  nd_plan(data, *op.in[1], batch_dims, &p, err);
  uint8_t* out = op.out[0]->data;
  for (size_t n = 0; n < p.batches; ++n) {
    for (size_t t = 0; t < p.tuples; ++t, out += p.slice * es) {
      size_t off;
      SPX_REQUIRE(nd_offset(data, *op.in[1], p, batch_dims, n, t, &off), "GatherND: an index is out of range");
      std::memcpy(out, data.data + off * es, p.slice * es);
    }
  }
  return true;
}

bool check_scatter_n_d(const Op& op, Message* err) {
  NdPlan p;
  SPX_REQUIRE(same_shape(*op.in[0], *op.out[0]), "output shape differs from the data's");
  if (!nd_plan(*op.in[0], *op.in[1], 0, &p, err)) return false;
  SPX_REQUIRE(op.in[2]->numel == p.tuples * p.slice, "updates size is wrong");
  return true;
}

bool run_scatter_n_d(const Op& op, uint8_t*, Message* err) {
  const Tensor& data = *op.in[0];
  const ScatterReduction reduction = scatter_n_d_attrs(op).reduction;
  NdPlan p;
  nd_plan(data, *op.in[1], 0, &p, err);
  if (op.out[0]->data != data.data) std::memmove(op.out[0]->data, data.data, data.nbytes);
  for (size_t t = 0; t < p.tuples; ++t) {
    size_t off;
    SPX_REQUIRE(nd_offset(data, *op.in[1], p, 0, 0, t, &off), "ScatterND: an index is out of range");
    for (size_t e = 0; e < p.slice; ++e) scatter_one(*op.out[0], *op.in[2], off + e, t * p.slice + e, reduction);
  }
  return true;
}

bool check_bit_cast(const Op& op, Message* err) {
  SPX_REQUIRE(op.in[0]->nbytes == op.out[0]->nbytes && sparsec_dtype_size(op.in[0]->dtype) ==
                  sparsec_dtype_size(op.out[0]->dtype), "input and output differ in element size or count");
  return true;
}

bool run_bit_cast(const Op& op, uint8_t*, Message*) {
  if (op.out[0]->data != op.in[0]->data) std::memmove(op.out[0]->data, op.in[0]->data, op.in[0]->nbytes);
  return true;
}

}  // namespace sparsec
