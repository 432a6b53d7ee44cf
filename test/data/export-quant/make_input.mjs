// deterministic test input with edge cases: 12 super-blocks of 256
import { writeFileSync } from "node:fs";
let s = 12345;
const rnd = () => { s = (s * 1103515245 + 12345) >>> 0; return s / 2 ** 32; };
const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
const n = 256 * 12;
const x = new Float32Array(n);
for (let i = 0; i < n; i++) x[i] = gauss() * 0.05;
// block 1: outliers
for (let i = 256; i < 512; i += 37) x[i] = (i % 2 ? 1 : -1) * 3.7;
// block 2: all positive
for (let i = 512; i < 768; i++) x[i] = Math.abs(x[i]) + 0.01;
// block 3: all zero sub-blocks in half
for (let i = 768; i < 896; i++) x[i] = 0;
// block 4: all zero
for (let i = 1024; i < 1280; i++) x[i] = 0;
// block 5: tiny sub-blocks whose scale rounds to 0 next to large ones
for (let i = 1280; i < 1536; i++) x[i] = (i - 1280) < 32 ? x[i] * 1e-6 : x[i] * 20;
// block 6: all negative
for (let i = 1536; i < 1792; i++) x[i] = -Math.abs(x[i]) - 0.02;
// block 7: constant
for (let i = 1792; i < 2048; i++) x[i] = 0.25;
// block 8: wide dynamic range
for (let i = 2048; i < 2304; i++) x[i] = x[i] * Math.pow(10, ((i % 16) - 8) / 3);
writeFileSync("input.f32", Buffer.from(x.buffer));
