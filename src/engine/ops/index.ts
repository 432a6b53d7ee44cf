// The op table: every differentiable op of the engine.
export { add, sub, mul, scale, sum, reshape, sliceCols } from "./elementwise.ts";
export { matmul, type MatmulOpts } from "./matmul.ts";
export { rmsNorm, rmsNorm16, rope, ropePair, glu, glu16, embedding, dropoutMask, type GluAct } from "./nn.ts";
export { attention, attention16, type AttentionOpts } from "./attention.ts";
export { tokenLogprobs, grpoLoss, type TokenLogprobs, type GrpoLossParams } from "./logprobs.ts";
export { loraLinear, type LoraBranch } from "./lora-linear.ts";
export { loraLinearGroup, linearGroup, linearConcat, groupable, type LoraPart, type LinearPart } from "./lora-group.ts";
export { sampleTokens, sampleTokensInto, type SampleParams, type SampledTokens } from "./sample.ts";
export { addRmsNorm, gluLora, qkvRopeCache, qkvRopeAttention, type DecodeAttentionOpts, type LoraUp, type LoraFromSource, type Cols, type QkvRopeCacheOpts } from "./decode.ts";
