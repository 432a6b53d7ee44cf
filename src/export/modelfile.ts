// Ollama Modelfile written beside a GGUF: FROM (and ADAPTER), TEMPLATE translated from the HF chat template for the
// common families (ChatML, Llama 3, Gemma), stop tokens, PARAMETER lines from generation_config.json.
// Is: a pattern match on well-known template markers, not a Jinja → Go-template compiler; for any other template the
// TEMPLATE line is left out and Ollama falls back to the GGUF's tokenizer.chat_template.
// Hand-written: Ollama's format is a handful of directives; no npm package writes it.
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";

export interface ModelfileInput {
  /** GGUF file name, relative to the Modelfile's folder */
  gguf: string;
  /** GGUF LoRA adapter file name, when the adapter is shipped separately */
  adapter?: string;
  chatTemplate?: string;
  stopTokens: string[];
  /** model folder to read generation_config.json from */
  modelDir?: string;
}

interface Family { template: string; stops: string[] }

function family(tpl: string | undefined): Family | undefined {
  if (!tpl) return undefined;
  if (tpl.includes("<|im_start|>") && tpl.includes("<|im_end|>")) {
    return {
      template: `{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}<|im_start|>assistant\n`,
      stops: ["<|im_start|>", "<|im_end|>"],
    };
  }
  if (tpl.includes("<|start_header_id|>") && tpl.includes("<|eot_id|>")) {
    return {
      template: `{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n`,
      stops: ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"],
    };
  }
  if (tpl.includes("<start_of_turn>") && tpl.includes("<end_of_turn>")) {
    return {
      template: `{{- range .Messages }}<start_of_turn>{{ if eq .Role "assistant" }}model{{ else }}{{ .Role }}{{ end }}\n{{ .Content }}<end_of_turn>\n{{ end }}<start_of_turn>model\n`,
      stops: ["<end_of_turn>"],
    };
  }
  return undefined;
}

const q = (s: string) => JSON.stringify(s);

/** Modelfile text for a GGUF export. */
export function modelfileText(inp: ModelfileInput): string {
  const lines = [`# Ollama Modelfile written by aha export. Use: ollama create <name> -f Modelfile`, `FROM ./${inp.gguf}`];
  if (inp.adapter) lines.push(`ADAPTER ./${inp.adapter}`);
  const fam = family(inp.chatTemplate);
  if (fam) lines.push(`TEMPLATE """${fam.template}"""`);
  else lines.push(`# no TEMPLATE: chat template not recognised; Ollama uses the GGUF's tokenizer.chat_template`);
  const stops = new Set([...(fam?.stops ?? []), ...inp.stopTokens]);
  for (const s of stops) lines.push(`PARAMETER stop ${q(s)}`);
  const gcPath = inp.modelDir ? join(inp.modelDir, "generation_config.json") : undefined;
  if (gcPath && existsSync(gcPath)) {
    const gc = JSON.parse(readFileSync(gcPath, "utf8")) as Record<string, unknown>;
    const map: [string, string][] = [["temperature", "temperature"], ["top_p", "top_p"], ["top_k", "top_k"], ["min_p", "min_p"], ["repetition_penalty", "repeat_penalty"]];
    for (const [hf, ol] of map) if (typeof gc[hf] === "number") lines.push(`PARAMETER ${ol} ${gc[hf]}`);
  }
  return lines.join("\n") + "\n";
}

