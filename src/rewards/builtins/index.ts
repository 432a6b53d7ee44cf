// Built-in reward functions.
export { correctness, intAnswer, strictFormat, softFormat, xmlCount, xmlCountScore, gsm8k, STRICT_FORMAT, SOFT_FORMAT } from "./gsm8k.ts";
export { numericProximity, type NumericProximityOptions } from "./numeric.ts";
export { regexReward, type RegexRewardOptions } from "./regex.ts";
export { lengthPenalty, type LengthPenaltyOptions } from "./length.ts";
export { overlongPenalty, type OverlongPenaltyOptions } from "./overlong.ts";
export { fromVerifier, type Verifier, type VerifierRewardOptions } from "./verifier.ts";
export { extractXmlAnswer, parseNumber, numbersEqual } from "./extract.ts";
export { codeTests, extractCode, testList, type CodeTestsOptions } from "./code-tests.ts";
export { judgeReward, judgeGroupReward, parseScore, parseGroupScores, fillTemplate, promptGroups, DEFAULT_JUDGE_PROMPT, DEFAULT_GROUP_PROMPT, type JudgeOptions } from "./judge.ts";
export { embeddingSimilarity, cosine, type EmbeddingSimilarityOptions } from "./embedding.ts";
export { rubricReward, extractJson, type RubricItem, type RubricOptions } from "./rubric.ts";
