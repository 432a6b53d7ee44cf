#!/bin/bash
# One device call: CUDA op parity, the shared fixture test files on CUDA (tests with AHA_POISON=1 as in npm test;
# AHA_TEST_DEVICES=cpu,cuda for the CPU's runs too; with them the CUDA-graph, flat-storage, 16-bit-input and KV-cache
# tests), then the GRPO/decode benchmark
# against PyTorch. Device time is short: `ops models variants` in one call and `bench bench15` in another fit the
# 10-minute limit.
# Run from the repository root on the GPU machine after `source .device/use-node.sh`, with carry
# [".device", ".devnm", "native/build-dev"] (Node, tsx, and the addons built with
# `AHA_PORTABLE=1 AHA_NO_CUDA_EMU=1 npx cmake-js compile --directory native --out native/build-dev`); the fixtures travel
# with the working tree (test/fixtures). Logs go to $OUT.
#   bash bench/gpu-run.sh [ops] [models] [variants] [bench] [bench15] [profile] [qlora] [bench4] [memory]   (default: ops models bench)
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
what=${*:-ops models bench}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
ln -sfn .devnm/node_modules node_modules
mkdir -p native/build/Release && cp native/build-dev/Release/*.node native/build/Release/
export AHA_FIXTURES=${AHA_FIXTURES:-$PWD/test/fixtures}
export LD_LIBRARY_PATH=$LD_LIBRARY_PATH:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cu13/lib:/opt/torch/.venv/lib/python3.12/site-packages/nvidia/cublas/lib
node --import tsx -e 'import("./src/engine/cuda.ts").then(m => console.log("cudaInfo", JSON.stringify(m.cudaInfo())))'
for w in $what; do
  case $w in
    ops) AHA_POISON=1 timeout ${OPS_TIMEOUT:-150} node --import tsx --test --test-reporter=spec test/cuda-ops.test.ts 2>&1 | tee "$OUT/ops.log" | grep -vE "^\s*(duration_ms|\.\.\.|---)" ;;
    models) AHA_POISON=1 AHA_TEST_DEVICES=${AHA_TEST_DEVICES:-cuda} timeout ${MODELS_TIMEOUT:-240} node --import tsx --test --test-concurrency=1 --test-reporter=spec test/models.test.ts test/grpo-loss.test.ts test/grpo-variants.test.ts test/generate.test.ts test/decode-step.test.ts test/flat-params.test.ts test/train-graph.test.ts test/gemm-inputs.test.ts test/kv-cache.test.ts test/bf16-mode.test.ts test/tensor-core-attention.test.ts test/fused-layers.test.ts 2>&1 | tee "$OUT/models.log" | grep -vE "^\s*(duration_ms|\.\.\.|---)" ;;
    # the opt-in decode paths (skinny GEMM kernel, programmatic dependent launch, kv-group attention) through the tests that run 16-bit
    # models, decode steps and graphs: the same assertions with them on
    variants) AHA_POISON=1 AHA_SKINNY_GEMM=1 AHA_PDL=1 AHA_DECODE_GROUP=1 AHA_TEST_DEVICES=cuda timeout ${VARIANTS_TIMEOUT:-150} node --import tsx --test --test-concurrency=1 --test-reporter=spec test/bf16-mode.test.ts test/decode-step.test.ts test/fused-layers.test.ts test/kv-cache.test.ts 2>&1 | tee "$OUT/variants.log" | grep -vE "^\s*(duration_ms|\.\.\.|---)" ;;
    bench) timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/gpu-grpo.ts $BENCH_ARGS 2>&1 | tee "$OUT/bench.log" ;;
    # the 1.5B shape at micro-batch 16 (5.89 GiB predicted by the emulator), torch at the same micro-batch
    bench15) timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/gpu-grpo.ts --shape 1.5b --micro 16 $BENCH15_ARGS 2>&1 | tee "$OUT/bench15.log" ;;
    # 4-bit bases (issue 23): the 4-bit and offload tests on the GPU (exact GEMMs, and the bf16 mode's test)
    qlora) AHA_POISON=1 AHA_TEST_DEVICES=cuda timeout ${QLORA_TIMEOUT:-240} node --import tsx --test --test-concurrency=1 --test-reporter=spec test/quant4.test.ts test/qlora.test.ts test/offload.test.ts test/long-context.test.ts 2>&1 | tee "$OUT/qlora.log" | grep -vE "^\s*(duration_ms|\.\.\.|---)" ;;
    # decode tokens/s and the train step at the 1.5B shape, 16-bit then 4-bit base, in one call (no torch)
    bench4) for fb in "" "--load-in-4bit"; do timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/gpu-grpo.ts --shape 1.5b --no-torch --no-profile $fb $BENCH4_ARGS; done 2>&1 | tee "$OUT/bench4.log" ;;
    # the memory table's GRPO steps measured by the GPU's own allocator (beside the emulator's predictions in docs/memory.md)
    memory) timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/memory-table.ts --json "$OUT/memory.json" 2>&1 | tee "$OUT/memory.log" ;;
    # GPU time by op (GEMMs split by weight type and shape), without torch: where a step's time goes
    profile) AHA_CUDA_PROFILE=1 timeout ${BENCH_TIMEOUT:-300} node --import tsx bench/gpu-grpo.ts --steps 2 --no-torch $BENCH_ARGS 2>&1 | tee "$OUT/profile.log" ;;
  esac
done
