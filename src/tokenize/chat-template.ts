// Chat templates: pick the template text a model ships and render it with @huggingface/jinja.
// Is: template selection (chat_template.jinja, or tokenizer_config's string / list of {name, template}) and rendering
// with the variables transformers passes (messages, add_generation_prompt, tools, special token strings, kwargs).
// Is not: a Jinja engine (the library is) nor tokenization. Simplifies: no `documents`/`continue_final_message`.
import { Template } from "@huggingface/jinja";
import type { ChatTemplateOptions, Message } from "./types.ts";

/** Named templates as found in a model folder; `default` is the unnamed one. */
export type ChatTemplateSource = string | { name: string; template: string }[];

export class ChatTemplates {
  private readonly parsed = new Map<string, Template>();
  readonly names: string[];

  /** @param sources name → template text; @param context variables every render gets (bos_token, …). */
  constructor(
    private readonly sources: Map<string, string>,
    private readonly context: Record<string, unknown>,
  ) {
    this.names = [...sources.keys()];
  }

  static from(source: ChatTemplateSource | undefined | null, context: Record<string, unknown>): ChatTemplates {
    const map = new Map<string, string>();
    if (typeof source === "string") map.set("default", source);
    else if (Array.isArray(source)) for (const t of source) map.set(t.name, t.template);
    return new ChatTemplates(map, context);
  }

  get available(): boolean {
    return this.sources.size > 0;
  }

  /** The template text that `render` would use for these options. */
  text(opts: ChatTemplateOptions = {}): string {
    return this.sources.get(this.pick(opts))!;
  }

  private pick(opts: ChatTemplateOptions): string {
    if (this.sources.size === 0) {
      throw new Error("this tokenizer has no chat template (no chat_template.jinja and no chat_template in tokenizer_config.json)");
    }
    if (opts.templateName !== undefined) {
      if (!this.sources.has(opts.templateName)) {
        throw new Error(`chat template "${opts.templateName}" not found; available: ${this.names.join(", ")}`);
      }
      return opts.templateName;
    }
    if (opts.tools && this.sources.has("tool_use")) return "tool_use";
    if (this.sources.has("default")) return "default";
    if (this.sources.size === 1) return this.names[0]!;
    throw new Error(`several chat templates (${this.names.join(", ")}) and none named "default": pass templateName`);
  }

  render(messages: Message[], opts: ChatTemplateOptions = {}): string {
    const name = this.pick(opts);
    let tpl = this.parsed.get(name);
    if (!tpl) {
      tpl = new Template(this.sources.get(name)!);
      this.parsed.set(name, tpl);
    }
    const { addGenerationPrompt, tools, templateName: _n, kwargs, ...rest } = opts;
    return tpl.render({
      ...this.context,
      ...rest,
      ...kwargs,
      messages,
      add_generation_prompt: addGenerationPrompt ?? false,
      ...(tools !== undefined ? { tools } : {}),
    });
  }
}
