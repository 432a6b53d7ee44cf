// Turns a native/cuda source into C++ for the emulator (emu.h): the two CUDA constructs that are not C++ syntax.
//   k<<<grid, block, smem, stream>>>(args)   →  ::emu::launch("k", ::emu::cfg(grid, block, smem, stream),
//                                                 ::emu::kernel_address(k), [=](auto... a) { k(a...); }, args)
//   extern __shared__ [__align__(n)] T name[];  →  T* name = (T*)::emu::dynamic_smem();
// and dlopen/dlsym (gemm.cu loads cuBLAS) → the emulator's, which hand out emulated cuBLAS entry points.
// Line numbers are kept (#line), so compiler errors and sanitizer reports name the original file and line.
//   node translate.mjs in.cu out.cpp
import { readFileSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";

const [src, dst] = process.argv.slice(2);
let text = readFileSync(src, "utf8");

// kernels declared as templates in this file: launched without template arguments, they are deduced from the call
const templates = new Set([...text.matchAll(/template\s*<[^>]*>\s*__global__[^(]*?\b([A-Za-z_]\w*)\s*\(/g)].map((m) => m[1]));
// a launch: the kernel expression (a name, maybe qualified, maybe with template arguments) before <<<
text = text.replace(/([A-Za-z_][\w:]*(?:<[^<>;()]*>)?)\s*<<<([\s\S]*?)>>>\s*\(\s*(\)?)/g, (_m, kernel, cfg, close) => {
  // (the kernel may be a function or a pointer to one: kernel_address takes either; [=] copies such a pointer)
  const address = templates.has(kernel) ? "nullptr" : `::emu::kernel_address(${kernel})`;
  return `::emu::launch(${JSON.stringify(kernel)}, ::emu::cfg(${cfg}), ${address}, [=](auto... a) { ${kernel}(a...); }${close ? ")" : ", "}`;
});

text = text.replace(/extern\s+__shared__\s+(?:__align__\(\s*\d+\s*\)\s+)?([A-Za-z_][\w\s]*?)\s+([A-Za-z_]\w*)\s*\[\s*\]\s*;/g,
  (_m, type, name) => `${type}* ${name} = (${type}*)::emu::dynamic_smem();`);

text = text.replace(/\bdlopen\s*\(/g, "emu_dlopen(").replace(/\bdlsym\s*\(/g, "emu_dlsym(");

writeFileSync(dst, `#line 1 ${JSON.stringify(resolve(src))}\n${text}`);
