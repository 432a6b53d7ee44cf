// A step of device work on fixed buffers (a decode step, a training micro-batch) that is captured once as a graph
// and then replayed with one launch, where the backend has graphs; otherwise, or when the capture is refused, it
// runs eagerly every time. The step's result (a tensor or an object of tensors) is kept: the graph's own output
// buffers once captured, else the latest eager run's. A refused capture is remembered per device and kind of step
// for the rest of the process, so later steps do not pay for failing again.
import type { Backend } from "./backend.ts";
import { Tensor } from "./tensor.ts";

const refused = new Map<string, string>();

type Result = Tensor | Record<string, Tensor>;
const tensorsOf = (r: Result | null): Tensor[] => (r === null ? [] : r instanceof Tensor ? [r] : Object.values(r));

export class ReplayedStep<T extends Result> {
  private graph: number | null = null;
  private out: T | null = null;
  private useGraph: boolean;
  private readonly key: string;
  /** why the step runs without a graph (capture refused), for reports */
  graphError: string | null;

  /** step: device work only (no uploads, reads or syncs), returning its outputs; kind names it in refusals. */
  constructor(private readonly be: Backend, private readonly step: () => T, graphs: boolean, kind: string) {
    this.key = `${be.device}/${kind}`;
    this.useGraph = graphs && !!be.captureGraph && !refused.has(this.key);
    this.graphError = refused.get(this.key) ?? null;
  }

  /** True once runs replay a captured graph. */
  get graphed(): boolean {
    return this.graph !== null;
  }

  /** Run the step (its inputs written beforehand) and return its outputs, valid until the next run or dispose. */
  run(): T {
    if (this.graph !== null) this.be.launchGraph!(this.graph);
    else if (this.useGraph) {
      try {
        const { graph, result } = this.be.captureGraph!(this.step, (r) => { for (const t of tensorsOf(r)) t.dispose(); });
        this.graph = graph;
        this.out = result;
        this.be.launchGraph!(graph); // capturing does not run the step
      } catch (e) {
        this.useGraph = false;
        this.graphError = (e as Error).message;
        refused.set(this.key, this.graphError);
        this.eager();
      }
    } else this.eager();
    return this.out!;
  }

  private eager(): void {
    for (const t of tensorsOf(this.out)) t.dispose();
    this.out = this.step();
  }

  dispose(): void {
    if (this.graph !== null) this.be.destroyGraph!(this.graph); // before the outputs: they are the graph's buffers
    this.graph = null;
    for (const t of tensorsOf(this.out)) t.dispose();
    this.out = null;
  }
}
