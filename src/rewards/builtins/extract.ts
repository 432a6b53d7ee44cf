// Answer extraction and number parsing shared by the built-in rewards.
// Is: the recipe's extract_xml_answer and a forgiving number parser. Is not: a math-expression evaluator
// ("3/4", "\\frac{3}{4}" and units are not numbers here).

/**
 * Text between the last `<answer>` and the next `</answer>`, trimmed — the Unsloth/willccbb `extract_xml_answer`.
 * As in the recipe, a completion with no `<answer>` tag yields the whole text trimmed.
 */
export function extractXmlAnswer(text: string): string {
  const afterOpen = text.split("<answer>").pop() ?? "";
  return (afterOpen.split("</answer>")[0] ?? "").trim();
}

/**
 * Parse a number as people write answers: "1,234", "$12", "12.50", "-3", "7." → number; anything else → null.
 */
export function parseNumber(text: unknown): number | null {
  if (typeof text === "number") return Number.isFinite(text) ? text : null;
  if (typeof text === "bigint") return Number(text);
  if (typeof text !== "string") return null;
  const s = text.trim().replace(/^\$/, "").replace(/,/g, "").replace(/\.$/, "").replace(/%$/, "").trim();
  if (!/^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$/.test(s)) return null;
  const v = Number(s);
  return Number.isFinite(v) ? v : null;
}

/** Equal as numbers (relative tolerance 1e-9, so 0.1+0.2 = 0.3); false when either is not a number. */
export function numbersEqual(a: number | null, b: number | null): boolean {
  if (a === null || b === null) return false;
  return Math.abs(a - b) <= 1e-9 * Math.max(1, Math.abs(a), Math.abs(b));
}
