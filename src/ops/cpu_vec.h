// cpu_vec.h — the vector helpers the fused CPU loops (*_cpu_kernel.cpp) share: at::vec's
// Vectorized of this TU's capability, and loads/stores of n ≤ one vector's lanes (a whole vector,
// or a tail whose missing lanes read as 0). Included by files compiled once per CPU capability:
// everything sits in the namespace CPU_CAPABILITY names, so each compiled version has its own.
#pragma once

#include <ATen/cpu/vec/vec.h>

#include <cstdint>

#ifndef CPU_CAPABILITY
#error "compile with -DCPU_CAPABILITY=DEFAULT|AVX2|AVX512"
#endif

namespace hgpt::ops::cpu_vec {
namespace CPU_CAPABILITY {

template <typename T>
using Vec = at::vec::Vectorized<T>;

template <typename T>
inline Vec<T> load(const T* p, int64_t n) {
  return n == Vec<T>::size() ? Vec<T>::loadu(p) : Vec<T>::loadu(p, n);
}

template <typename T>
inline void store(const Vec<T>& v, T* p, int64_t n) {
  if (n == Vec<T>::size()) {
    v.store(p);
  } else {
    v.store(p, static_cast<int>(n));
  }
}

}  // namespace CPU_CAPABILITY
}  // namespace hgpt::ops::cpu_vec
