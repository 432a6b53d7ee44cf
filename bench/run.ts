// `npm run bench [-- gemm|generate|agents|sandbox|reward-pool]`: the CPU benchmarks, each printing figures beside a baseline of the same run.
// Long ones run only when named: `npm run bench -- algorithms [--steps N --held-out K]` (the GRPO family on the default
// task), `npm run bench -- cpu-vs-llamacpp` (several minutes, a 1 GB model).
import { benchGemm } from "./gemm.ts";
import { benchGenerate } from "./generate.ts";
import { benchAgents } from "./agents.ts";
import { benchSandbox } from "./sandbox.ts";
import { benchRewardPool } from "./reward-pool.ts";
import { benchAlgorithms } from "./algorithms.ts";
import { benchCpuVsLlamacpp } from "./cpu-vs-llamacpp.ts";

const which = process.argv[2];
if (!which || which === "gemm") benchGemm();
if (!which || which === "generate") benchGenerate();
if (!which || which === "agents") await benchAgents();
if (!which || which === "sandbox") await benchSandbox();
if (!which || which === "reward-pool") await benchRewardPool();
if (which === "algorithms") await benchAlgorithms(process.argv.slice(3));
if (which === "cpu-vs-llamacpp") await benchCpuVsLlamacpp();
