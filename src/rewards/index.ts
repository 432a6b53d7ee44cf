// Public API of src/rewards: the reward contract, the runner, metrics, built-ins and the registry.
export type { Completion, NamedReward, RewardArgs, RewardCallContext, RewardDetails, RewardFunc, RewardInput, RewardValues } from "./types.ts";
export { completionText, detailsOf, isNamedReward, toNamedReward, withDetails } from "./types.ts";
export { computeRewards, type ComputeRewardsOptions, type RewardResult } from "./compute.ts";
export { RewardError, RewardSampleErrors, problemLines, type RewardProblem, type RewardProblemKind } from "./errors.ts";
export { placeRewards, RewardPool, type PlacedRewards, type PlaceOptions } from "./pool.ts";
export { meanStd, rewardMetrics } from "./stats.ts";
export { REWARD_REGISTRY, REWARD_FACTORIES, resolveReward, resolveRewards, type RewardSpec, type ResolveRewardOptions } from "./registry.ts";
export * from "./builtins/index.ts";
export { Endpoint, endpoint, type EndpointOptions } from "./endpoint.ts";
export { SandboxPool, sandboxPool, closeSandboxes, type SandboxPoolOptions } from "./sandbox/pool.ts";
export type { JobResult, SandboxLanguage, SandboxOutcome } from "./sandbox/protocol.ts";
