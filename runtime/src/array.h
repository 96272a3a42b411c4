// Fixed-size arrays on malloc. The runtime builds without exceptions and without libc++'s operator new
// (whose std::bad_alloc links the unwinder and a demangler): running out of memory is a return value.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <new>

namespace sparsec {

template <typename T>
class Array {
 public:
  Array() = default;
  Array(const Array&) = delete;
  Array& operator=(const Array&) = delete;
  ~Array() { clear(); }

  // Replaces the contents with n value-initialised elements; false (and empty) when memory runs out.
  bool resize(size_t n) {
    clear();
    if (n == 0) return true;
    if (n > SIZE_MAX / sizeof(T)) return false;
    data_ = static_cast<T*>(std::malloc(n * sizeof(T)));
    if (!data_) return false;
    for (size_t i = 0; i < n; ++i) new (data_ + i) T();
    size_ = n;
    return true;
  }

  bool assign(const Array& other) {
    if (!resize(other.size_)) return false;
    for (size_t i = 0; i < size_; ++i) data_[i] = other.data_[i];
    return true;
  }

  void clear() {
    for (size_t i = 0; i < size_; ++i) data_[i].~T();
    std::free(data_);
    data_ = nullptr;
    size_ = 0;
  }

  size_t size() const { return size_; }
  bool empty() const { return size_ == 0; }
  T* data() { return data_; }
  const T* data() const { return data_; }
  T& operator[](size_t i) { return data_[i]; }
  const T& operator[](size_t i) const { return data_[i]; }
  T* begin() { return data_; }
  T* end() { return data_ + size_; }
  const T* begin() const { return data_; }
  const T* end() const { return data_ + size_; }

 private:
  T* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace sparsec
