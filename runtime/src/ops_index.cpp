// Logic, comparison, selection and index ops: Compare, Bitwise, Where, Range, Cumulative, TopK, GatherElements,
// ScatterElements, GatherND, ScatterND, BitCast. Integers and bools are exact; every index is range-checked.
#include <algorithm>
#include <cmath>
#include <type_traits>

#include "op_util.h"
#include "sparsec_rt.h"

namespace sparsec {
namespace {

// Calls f(T{}) with the C++ type holding dtype (bool as uint8_t).
template <typename F>
void with_type(uint8_t dtype, F&& f) {
  switch (dtype) {
    case SPARSEC_FLOAT32: f(float{}); break;
    case SPARSEC_INT64: f(int64_t{}); break;
    case SPARSEC_INT32: f(int32_t{}); break;
    case SPARSEC_INT8: f(int8_t{}); break;
    default: f(uint8_t{}); break;  // uint8, bool
  }
}

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

// y[i] = f(a[i], b[i]) over the broadcast of two operands of type T into an output of type Y.
template <typename T, typename Y, typename F>
void broadcast2(const Op& op, F f) {
  Broadcast plan;
  make_broadcast(*op.out[0], op.in.data(), 2, &plan);
  const T* a = op.in[0]->as<const T>();
  const T* b = op.in[1]->as<const T>();
  Y* y = op.out[0]->as<Y>();
  const int64_t sa = plan.stride[0][plan.ndim - 1], sb = plan.stride[1][plan.ndim - 1];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[out_off + i] = f(a[off[0] + i * sa], b[off[1] + i * sb]);
  });
}

template <typename T>
bool compare(CompareOp kind, T a, T b) {
  switch (kind) {
    case CompareOp::kEqual: return a == b;
    case CompareOp::kLess: return a < b;
    case CompareOp::kGreater: return a > b;
    case CompareOp::kLessEqual: return a <= b;
    case CompareOp::kGreaterEqual: return a >= b;
  }
  return false;
}

template <typename T>
T shift(BitwiseOp kind, T a, T b) {
  constexpr int bits = int(sizeof(T) * 8);
  using U = typename std::make_unsigned<T>::type;
  if (b < 0 || int64_t(b) >= bits) return kind == BitwiseOp::kShiftRight && a < 0 ? T(-1) : T(0);
  if (kind == BitwiseOp::kShiftLeft) return T(U(U(a) << int(b)));
  return a < 0 ? T(~(U(~U(a)) >> int(b))) : T(U(a) >> int(b));  // arithmetic shift without implementation-defined >>
}

template <typename T>
T bitwise(BitwiseOp kind, T a, T b) {
  switch (kind) {
    case BitwiseOp::kAnd: return T(a & b);
    case BitwiseOp::kOr: return T(a | b);
    case BitwiseOp::kXor: return T(a ^ b);
    default: return shift(kind, a, b);
  }
}

template <size_t kSize>
struct Bytes {
  uint8_t b[kSize];
};

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
    case ScatterReduction::kAdd: return std::is_floating_point<T>::value ? T(old + update) : T(uint64_t(old) + uint64_t(update));
    case ScatterReduction::kMul: return std::is_floating_point<T>::value ? T(old * update) : T(uint64_t(old) * uint64_t(update));
    case ScatterReduction::kMax: return std::max(old, update);
    case ScatterReduction::kMin: return std::min(old, update);
  }
  return update;
}

// The data operand's shape equals the output's (Scatter*).
bool same_shape(const Tensor& a, const Tensor& b) {
  if (a.ndim != b.ndim) return false;
  for (uint32_t d = 0; d < a.ndim; ++d)
    if (a.dims[d] != b.dims[d]) return false;
  return true;
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
  const CompareOp kind = compare_attrs(op).op;
  with_type(op.in[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    broadcast2<T, uint8_t>(op, [kind](T a, T b) { return uint8_t(compare(kind, a, b)); });
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
  with_type(op.in[0]->dtype, [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_integral<T>::value) broadcast2<T, T>(op, [kind](T a, T b) { return bitwise(kind, a, b); });
  });
  return true;
}

bool check_where(const Op& op, Message* err) { return check_broadcast(op, 3, err); }

template <size_t kSize>
void where_bytes(const Op& op, const Broadcast& plan) {
  using E = Bytes<kSize>;
  const uint8_t* c = op.in[0]->data;
  const E* x = op.in[1]->as<const E>();
  const E* y = op.in[2]->as<const E>();
  E* z = op.out[0]->as<E>();
  const int64_t sc = plan.stride[0][plan.ndim - 1], sx = plan.stride[1][plan.ndim - 1], sy = plan.stride[2][plan.ndim - 1];
  for_each_run(plan, [&](size_t out_off, const int64_t* off, int64_t n) {
    for (int64_t i = 0; i < n; ++i) z[out_off + i] = c[off[0] + i * sc] ? x[off[1] + i * sx] : y[off[2] + i * sy];
  });
}

bool run_where(const Op& op, uint8_t*, Message*) {
  Broadcast plan;
  make_broadcast(*op.out[0], op.in.data(), 3, &plan);
  switch (sparsec_dtype_size(op.out[0]->dtype)) {
    case 1: where_bytes<1>(op, plan); break;
    case 4: where_bytes<4>(op, plan); break;
    default: where_bytes<8>(op, plan); break;
  }
  return true;
}

bool check_range(const Op& op, Message* err) {
  for (size_t i = 0; i < 3; ++i) SPX_REQUIRE(op.in[i]->numel == 1, "start, limit and delta must be scalars");
  SPX_REQUIRE(op.out[0]->ndim == 1, "the output must be 1-D");
  return true;
}

template <typename T>
bool range(const Op& op, Message* err) {
  const T start = *op.in[0]->as<const T>(), limit = *op.in[1]->as<const T>(), delta = *op.in[2]->as<const T>();
  SPX_REQUIRE(delta != T(0), "Range: delta is zero");
  int64_t count;
  if (std::is_floating_point<T>::value) {
    count = int64_t(std::max(std::ceil((double(limit) - double(start)) / double(delta)), 0.0));
  } else {
    const int64_t diff = int64_t(limit) - int64_t(start), d = int64_t(delta);
    count = d > 0 ? (diff > 0 ? (diff + d - 1) / d : 0) : (diff < 0 ? (diff + d + 1) / d : 0);
  }
  SPX_REQUIRE(count == op.out[0]->dims[0], "Range: start, limit and delta give %lld elements; the model declared %lld",
              static_cast<long long>(count), static_cast<long long>(op.out[0]->dims[0]));
  T* y = op.out[0]->as<T>();
  for (int64_t i = 0; i < count; ++i) y[i] = T(start + T(i) * delta);
  return true;
}

bool run_range(const Op& op, uint8_t*, Message* err) {
  switch (op.out[0]->dtype) {
    case SPARSEC_FLOAT32: return range<float>(op, err);
    case SPARSEC_INT64: return range<int64_t>(op, err);
    default: return range<int32_t>(op, err);
  }
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
  with_type(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const bool sum = a.kind == CumulativeKind::kSum;
    const T* in = x.as<const T>();
    T* out = op.out[0]->as<T>();
    for (size_t o = 0; o < outer; ++o) {
      for (size_t i = 0; i < inner; ++i) {
        T acc = sum ? T(0) : T(1);
        for (size_t s = 0; s < len; ++s) {
          const size_t k = a.reverse ? len - 1 - s : s, at = (o * len + k) * inner + i;
          const T v = in[at];
          if (a.exclusive) out[at] = acc;
          acc = std::is_floating_point<T>::value ? (sum ? T(acc + v) : T(acc * v))
                                                 : (sum ? T(uint64_t(acc) + uint64_t(v)) : T(uint64_t(acc) * uint64_t(v)));
          if (!a.exclusive) out[at] = acc;
        }
      }
    }
  });
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
  uint32_t* order = reinterpret_cast<uint32_t*>(scratch);
  int64_t* indices = op.out[1]->as<int64_t>();
  with_type(x.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* in = x.as<const T>();
    T* values = op.out[0]->as<T>();
    for (size_t o = 0; o < outer; ++o) {
      for (size_t i = 0; i < inner; ++i) {
        const T* row = in + o * len * inner + i;
        for (size_t s = 0; s < len; ++s) order[s] = uint32_t(s);
        // A strict total order: NaN above every number, then ties by the lower index (as onnxruntime).
        auto before = [&](uint32_t p, uint32_t q) {
          const T u = row[p * inner], v = row[q * inner];
          const bool nu = u != u, nv = v != v;
          if (nu != nv) return a.largest ? nu : nv;
          if (!nu && u != v) return a.largest ? u > v : u < v;
          return p < q;
        };
        std::partial_sort(order, order + k, order + len, before);
        for (size_t s = 0; s < k; ++s) {
          const size_t at = (o * k + s) * inner + i;
          values[at] = row[order[s] * inner];
          indices[at] = int64_t(order[s]);
        }
      }
    }
  });
  return true;
}

bool check_gather_elements(const Op& op, Message* err) {
  SPX_REQUIRE(same_shape(*op.in[1], *op.out[0]), "output shape differs from the indices'");
  return check_elements(*op.in[0], *op.in[1], gather_elements_attrs(op).axis, err);
}

bool run_gather_elements(const Op& op, uint8_t*, Message* err) {
  const Tensor& data = *op.in[0];
  const Tensor& indices = *op.in[1];
  const size_t axis = size_t(gather_elements_attrs(op).axis), es = sparsec_dtype_size(data.dtype);
  int64_t strides[kMaxDims];
  contiguous_strides(data, strides);
  Odometer pos;
  for (size_t i = 0; i < indices.numel; ++i, pos.next(indices)) {
    int64_t k;
    SPX_REQUIRE(resolve_index(index_value(indices, i), data.dims[axis], &k), "GatherElements: index %lld out of range",
                static_cast<long long>(index_value(indices, i)));
    std::memcpy(op.out[0]->data + i * es, data.data + element_offset(pos.idx, strides, data.ndim, axis, k) * es, es);
  }
  return true;
}

bool check_scatter_elements(const Op& op, Message* err) {
  SPX_REQUIRE(same_shape(*op.in[0], *op.out[0]), "output shape differs from the data's");
  SPX_REQUIRE(same_shape(*op.in[1], *op.in[2]), "updates and indices differ in shape");
  return check_elements(*op.in[0], *op.in[1], scatter_elements_attrs(op).axis, err);
}

bool run_scatter_elements(const Op& op, uint8_t*, Message* err) {
  const Tensor& data = *op.in[0];
  const Tensor& indices = *op.in[1];
  const ScatterElementsAttrs a = scatter_elements_attrs(op);
  const size_t axis = size_t(a.axis);
  if (op.out[0]->data != data.data) std::memmove(op.out[0]->data, data.data, data.nbytes);
  int64_t strides[kMaxDims];
  contiguous_strides(data, strides);
  bool ok = true;
  with_type(data.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* updates = op.in[2]->as<const T>();
    T* y = op.out[0]->as<T>();
    Odometer pos;
    for (size_t i = 0; i < indices.numel && ok; ++i, pos.next(indices)) {
      int64_t k;
      ok = resolve_index(index_value(indices, i), data.dims[axis], &k);
      if (!ok) break;
      T& target = y[element_offset(pos.idx, strides, data.ndim, axis, k)];
      target = reduce_into(a.reduction, target, updates[i]);
    }
  });
  SPX_REQUIRE(ok, "ScatterElements: an index is out of range");
  return true;
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
    if (!resolve_index(index_value(indices, (n * p.tuples + t) * p.depth + j), data.dims[batch_dims + j], &k)) return false;
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
  bool ok = true;
  with_type(data.dtype, [&](auto tag) {
    using T = decltype(tag);
    const T* updates = op.in[2]->as<const T>();
    T* y = op.out[0]->as<T>();
    for (size_t t = 0; t < p.tuples && ok; ++t) {
      size_t off;
      ok = nd_offset(data, *op.in[1], p, 0, 0, t, &off);
      for (size_t e = 0; ok && e < p.slice; ++e) y[off + e] = reduce_into(reduction, y[off + e], updates[t * p.slice + e]);
    }
  });
  SPX_REQUIRE(ok, "ScatterND: an index is out of range");
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
