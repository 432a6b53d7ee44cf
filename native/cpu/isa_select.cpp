// Picks the per-instruction-set kernel table (isa.h) once, at first use: the widest this CPU runs (on x86-64 the
// operating system's support for the vector state is part of what __builtin_cpu_supports checks), or the one named by
// AHA_CPU_ISA. Not a general CPU-feature library: it asks only what the tables need.
#include "isa.h"
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace aha {

namespace {
bool runs(const IsaKernels* t) {
  if (!t) return false;
  const char* n = t->name;
#if defined(__x86_64__)
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq");
  if (!std::strcmp(n, "avx512bf16")) return avx512 && __builtin_cpu_supports("avx512bf16");
  if (!std::strcmp(n, "avx512")) return avx512;
  if (!std::strcmp(n, "avx2")) return avx2;
#endif
  return true;  // neon (every arm64 CPU) and base
}

// widest first
const IsaKernels* (*const kAll[])() = {isa_avx512bf16, isa_avx512, isa_avx2, isa_neon, isa_base};

const IsaKernels* chosen = nullptr;

const IsaKernels* pick() {
  const IsaKernels* best = nullptr;
  for (auto f : kAll)
    if (runs(f())) { best = f(); break; }
  const char* want = std::getenv("AHA_CPU_ISA");
  if (want && *want) {
    for (auto f : kAll)
      if (f() && !std::strcmp(f()->name, want)) {
        if (runs(f())) return f();
        break;
      }
    std::fprintf(stderr, "aha: AHA_CPU_ISA=%s is not a kernel set this CPU runs; using %s\n", want, best->name);
  }
  return best;
}
}  // namespace

const IsaKernels& isa() {
  if (!chosen) chosen = pick();
  return *chosen;
}

int isa_all(const IsaKernels** out, int max) {
  int n = 0;
  for (auto f : kAll)
    if (n < max && runs(f())) out[n++] = f();
  return n;
}

bool isa_use(const char* name) {
  for (auto f : kAll)
    if (f() && !std::strcmp(f()->name, name) && runs(f())) { chosen = f(); return true; }
  return false;
}

}  // namespace aha
