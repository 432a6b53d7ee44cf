// LoRA dropout's uniform for element i of the mask drawn with (seed, salt): SplitMix64 of the three, top 24 bits.
// Integer arithmetic and an exact float; one definition included by native/cpu and native/cuda, so both backends
// draw the same masks.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define AHA_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define AHA_HOST_DEVICE inline
#endif

namespace aha_common {
AHA_HOST_DEVICE float dropout_uniform(uint32_t seed, uint32_t salt, long i) {
  uint64_t z = (((uint64_t)seed << 32) | salt) + (uint64_t)i * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  z ^= z >> 31;
  return (float)(z >> 40) * (1.0f / 16777216.0f);
}
}  // namespace aha_common
