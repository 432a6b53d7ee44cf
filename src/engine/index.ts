// Public engine API.
export * from "./tensor.ts";
export * from "./ops/index.ts";
export { backward, noGrad, isGradEnabled, record, recordMulti } from "./autograd.ts";
export { getBackend, setDefaultDevice, defaultBackend, registerBackend, graphsByDefault, type Backend, type Device } from "./backend.ts";
export type { DType } from "./dtype.ts";
export { checkpoint } from "./checkpoint.ts";
