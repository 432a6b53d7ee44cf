// OpenAI's error JSON for `aha serve`: {"error": {"message", "type", "param", "code"}} with the HTTP status OpenAI
// uses (400 bad request naming the field, 401 bad key, 404 unknown model or route, 413 body too large). Also turns a
// zod validation failure into a 400 that names the field as OpenAI does ("messages[0].role").
import type { z } from "zod";

export class ApiError extends Error {
  constructor(readonly status: number, message: string, readonly param: string | null = null, readonly code: string | null = null,
    readonly type = status === 401 ? "authentication_error" : status === 404 ? "not_found_error" : status >= 500 ? "server_error" : "invalid_request_error") {
    super(message);
  }

  body(): { error: { message: string; type: string; param: string | null; code: string | null } } {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** A field path as OpenAI writes it: messages[0].content */
export function paramPath(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === "number" ? `[${p}]` : i === 0 ? String(p) : `.${String(p)}`)).join("");
}

/** Parse a request body with a zod schema, or throw a 400 naming the first bad field. */
export function parseBody<S extends z.ZodType>(schema: S, body: unknown): z.output<S> {
  const r = schema.safeParse(body);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  if (issue.code === "unrecognized_keys") {
    const key = paramPath([...issue.path, issue.keys[0]]);
    throw new ApiError(400, `Unrecognized request argument supplied: ${key}`, key);
  }
  const param = paramPath(issue.path);
  throw new ApiError(400, `${param ? `'${param}': ` : ""}${issue.message}`, param || null, issue.code === "invalid_type" && issue.input === undefined ? "missing_required_parameter" : "invalid_value");
}
