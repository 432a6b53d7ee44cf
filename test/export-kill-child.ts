// Child process for export-kill.test.ts: a large GGUF export (lazy random 1024-wide weights, q4_k_m) that the parent
// kills midway. argv: <model dir with config/tokenizer> <out path>
import { exportGguf } from "../src/export/index.ts";
import { lazySynthWeights } from "./export-synth.ts";

const [dir, out] = process.argv.slice(2);
exportGguf(dir, lazySynthWeights({ hidden: 1024, inter: 4096, layers: 8, heads: 8, kvHeads: 4, vocab: 512 }), out, {
  type: "q4_k_m",
  onProgress: (d) => { if (d === 1) process.stdout.write("started\n"); },
});
process.stdout.write("finished\n");
