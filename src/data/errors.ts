// DatasetError: every data problem names the file, the place in it and what is wrong.
// Is: the error type and its message format. Is not: recovery — a bad row stops loading.

export class DatasetError extends Error {
  constructor(
    readonly file: string,
    /** Human place, e.g. "line 12" or "row 3"; empty when the whole file is at fault. */
    readonly where: string,
    readonly problem: string,
  ) {
    super(`${file}${where ? `: ${where}` : ""}: ${problem}`);
    this.name = "DatasetError";
  }
}
