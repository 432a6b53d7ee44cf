// The --model and --revision help shared by every command that loads a model: a local folder, or a Hugging Face hub
// id found in the local hub cache (src/hub/cache.ts; aha never downloads).
export const MODEL_HELP = "Hugging Face model folder, or hub id in the local hub cache";
export const REVISION_HELP = "with a hub id: the ref or commit of the cached snapshot (default main)";
