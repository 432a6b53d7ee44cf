#!/bin/bash
# One device call: CUDA op parity, the shared fixture test files on CUDA (tests with AHA_POISON=1 as in npm test;
# AHA_TEST_DEVICES=cpu,cuda for the CPU's runs too; with them the CUDA-graph, flat-storage, 16-bit-input and KV-cache
# tests), then the GRPO/decode benchmark
# against PyTorch. Device time is short: `ops models variants` in one call and `bench bench15` in another fit the
# 10-minute limit.
# On your own GPU machine: `npm install` (it builds the CUDA module where nvcc is), then from the repository root
# `OUT=bench/results/gpu-<card> bash bench/gpu-run.sh ops models archs qlora bench` (a slower card than an H100 may need
# the *_TIMEOUT variables raised: MODELS_TIMEOUT=1200 …). docs/gpus.md lists each card's command.
# On the device tool: run from the repository root on the GPU machine after `source .device/use-node.sh`, with carry
# [".device", ".devnm", "native/build-dev"] (Node, tsx, and the addons built with
# `AHA_PORTABLE=1 AHA_NO_CUDA_EMU=1 npx cmake-js compile --directory native --out native/build-dev`: the fat module,
# code for every GPU from Turing on; AHA_CUDA_ARCH=90 in front builds an H100/H200-only one in a fraction of the time);
# the fixtures travel with the working tree (test/fixtures). Logs go to $OUT, each starting with the card it ran on
# (card.txt: name, compute capability, memory, driver; and the backend's start-up line: what it chose for the card).
#   bash bench/gpu-run.sh [ops] [models] [variants] [archs] [bench] [bench15] [profile] [qlora] [bench4] [memory]   (default: ops models bench)
# archs: the tests whose code differs by GPU architecture (test/gpu-arch.test.ts, the fixtures in the card's 16-bit
# mode, the tensor-core kernels): what the CUDA emulator runs as sm_75/80/86/90 in CI, on the real card.
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
what=${*:-ops models bench}
card=$(nvidia-smi --query-gpu=name,compute_cap,memory.total,driver_version --format=csv,noheader | head -1)
echo "card: $card" | tee "$OUT/card.txt"
# (the device tool's carried Node packages and addons; on your own GPU machine, after `npm install`, neither exists
# and the checkout's node_modules and native/build are used as they are)
if [ -d .devnm/node_modules ]; then ln -sfn .devnm/node_modules node_modules; fi
if [ -d native/build-dev/Release ]; then mkdir -p native/build/Release && cp native/build-dev/Release/*.node native/build/Release/; fi
export AHA_FIXTURES=${AHA_FIXTURES:-$PWD/test/fixtures}
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cublas/lib
node --import tsx -e 'import("./src/engine/cuda.ts").then(m => { console.log("cudaInfo", JSON.stringify(m.cudaInfo())); m.registerCudaBackend(); })' 2>&1 | tee -a "$OUT/card.txt"
# every log names the card first: log NAME starts $OUT/NAME with it and gives its path
log() { echo "card: $card" > "$OUT/$1"; echo "$OUT/$1"; }
for w in $what; do
  case $w in
    ops) AHA_POISON=1 timeout ${OPS_TIMEOUT:-150} node --import tsx --test --test-reporter=spec test/cuda-ops.test.ts 2>&1 | tee -a "$(log ops.log)" | grep -vE "^\s*(duration_ms|\.\.\.|---)" ;;
    models) AHA_POISON=1 AHA_TEST_DEVICES=${AHA_TEST_DEVICES:-cuda} timeout ${MODELS_TIMEOUT:-240} node --import tsx --test --test-concurrency=1 --test-reporter=spec test/models.test.ts test/grpo-loss.test.ts test/grpo-variants.test.ts test/generate.test.ts test/decode-step.test.ts test/flat-params.test.ts test/train-graph.test.ts test/gemm-inputs.test.ts test/kv-cache.test.ts test/bf16-mode.test.ts test/tensor-core-attention.test.ts test/fused-layers.test.ts 2>&1 | tee -a "$(log models.log)" | grep -vE "^\s*(duration_ms|\.\.\.|---)" ;;
    # the opt-in decode paths (skinny GEMM kernel, programmatic dependent launch, kv-group attention) through the tests that run 16-bit
    # models, decode steps and graphs: the same assertions with them on
    variants) AHA_POISON=1 AHA_SKINNY_GEMM=1 AHA_PDL=1 AHA_DECODE_GROUP=1 AHA_TEST_DEVICES=cuda timeout ${VARIANTS_TIMEOUT:-150} node --import tsx --test --test-concurrency=1 --test-reporter=spec test/bf16-mode.test.ts test/decode-step.test.ts test/fused-layers.test.ts test/kv-cache.test.ts 2>&1 | tee -a "$(log variants.log)" | grep -vE "^\s*(duration_ms|\.\.\.|---)" ;;
    archs) AHA_POISON=1 AHA_TEST_DEVICES=cuda timeout ${ARCHS_TIMEOUT:-200} node --import tsx --test --test-concurrency=1 --test-reporter=spec test/gpu-arch.test.ts test/bf16-mode.test.ts test/tensor-core-attention.test.ts 2>&1 | tee -a "$(log archs.log)" | grep -vE "^\s*(duration_ms|\.\.\.|---)"
      AHA_POISON=1 timeout ${ARCHS_TIMEOUT:-200} node --import tsx --test --test-reporter=spec --test-name-pattern "tensor cores|gemm with|skinny|profile" test/cuda-ops.test.ts 2>&1 | tee -a "$(log archs-ops.log)" | grep -vE "^\s*(duration_ms|\.\.\.|---)" ;;
    bench) timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/gpu-grpo.ts $BENCH_ARGS 2>&1 | tee -a "$(log bench.log)" ;;
    # the 1.5B shape at micro-batch 16 (5.89 GiB predicted by the emulator), torch at the same micro-batch
    bench15) timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/gpu-grpo.ts --shape 1.5b --micro 16 $BENCH15_ARGS 2>&1 | tee -a "$(log bench15.log)" ;;
    # 4-bit bases (issue 23): the 4-bit and offload tests on the GPU (exact GEMMs, and the bf16 mode's test)
    qlora) AHA_POISON=1 AHA_TEST_DEVICES=cuda timeout ${QLORA_TIMEOUT:-240} node --import tsx --test --test-concurrency=1 --test-reporter=spec test/quant4.test.ts test/qlora.test.ts test/offload.test.ts test/long-context.test.ts 2>&1 | tee -a "$(log qlora.log)" | grep -vE "^\s*(duration_ms|\.\.\.|---)" ;;
    # decode tokens/s and the train step at the 1.5B shape, 16-bit then 4-bit base, in one call (no torch)
    bench4) for fb in "" "--load-in-4bit"; do timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/gpu-grpo.ts --shape 1.5b --no-torch --no-profile $fb $BENCH4_ARGS; done 2>&1 | tee -a "$(log bench4.log)" ;;
    # the memory table's GRPO steps measured by the GPU's own allocator (beside the emulator's predictions in docs/memory.md)
    memory) timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/memory-table.ts --json "$OUT/memory.json" 2>&1 | tee -a "$(log memory.log)" ;;
    # GPU time by op (GEMMs split by weight type and shape), without torch: where a step's time goes
    profile) AHA_CUDA_PROFILE=1 timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/gpu-grpo.ts --steps 2 --no-torch $BENCH_ARGS 2>&1 | tee -a "$(log profile.log)" ;;
  esac
done
