# PyTorch + transformers + peft baseline for bench/gpu-grpo.ts: the same random-weight folder, LoRA r=16 on all
# linear layers, the same GRPO step (TRL's per-token loss: clipped ratio, "grpo" normalisation, beta 0; TRL's
# selective_log_softmax over logits_to_keep completion positions) in the same micro-batches, then KV-cache decode
# of 256 tokens for the 64 sequences (teacher-forced, like aha's), then generate() rollouts (8 x 8, --gen-tokens new
# tokens each, sampled as TRL does without vLLM). bf16 weights and activations, sdpa attention.
# Prints one line "TORCH {json}".
import argparse, json, math, time
import torch
import torch.nn.functional as F
from transformers import AutoModelForCausalLM
from peft import LoraConfig, get_peft_model

ap = argparse.ArgumentParser()
ap.add_argument("--dir", required=True)
ap.add_argument("--micro", type=int, default=8)
ap.add_argument("--steps", type=int, default=3)
ap.add_argument("--gen-tokens", type=int, default=64)
a = ap.parse_args()
P, T, NSEQ = 128, 256, 64
dev = "cuda"
torch.manual_seed(0)
model = AutoModelForCausalLM.from_pretrained(a.dir, dtype=torch.bfloat16, attn_implementation="sdpa").to(dev)
model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear", lora_dropout=0.0))
V = model.config.vocab_size
opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
prompt = torch.randint(0, V - 1000, (NSEQ, P), device=dev)
comp = torch.randint(0, V - 1000, (NSEQ, T), device=dev)
adv = torch.rand(NSEQ, device=dev) * 2 - 1
old = torch.full((NSEQ, T), -math.log(V), device=dev)


def selective_log_softmax(logits, index):  # TRL's, bf16 branch
    rows = []
    for row_logits, row_labels in zip(logits, index):
        row_logps = F.log_softmax(row_logits, dim=-1)
        rows.append(row_logps.gather(dim=-1, index=row_labels.unsqueeze(-1)).squeeze(-1))
    return torch.stack(rows)


def step():
    for s in range(0, NSEQ, a.micro):
        ids = torch.cat([prompt[s:s + a.micro], comp[s:s + a.micro]], dim=1)
        mask = torch.ones_like(ids)
        logits = model(input_ids=ids, attention_mask=mask, logits_to_keep=T + 1).logits[:, :-1, :]
        logps = selective_log_softmax(logits, comp[s:s + a.micro])
        c1 = torch.exp(logps - old[s:s + a.micro])
        c2 = torch.clamp(c1, 0.8, 1.2)
        A = adv[s:s + a.micro].unsqueeze(1)
        per_tok = -torch.min(c1 * A, c2 * A)
        m = torch.ones_like(per_tok)
        loss = ((per_tok * m).sum(-1) / m.sum(-1).clamp(min=1.0)).mean() / (NSEQ // a.micro)
        loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return loss.item()


times, peak, peak_res = [], 0, 0
for i in range(a.steps):
    torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    l = step()
    torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = max(peak, torch.cuda.max_memory_allocated()); peak_res = max(peak_res, torch.cuda.max_memory_reserved())
    print(f"torch step {i}: {dt:.3f} s, loss {l:.4f}, peak {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB", flush=True)
    if i > 0 or a.steps == 1:
        times.append(dt)
times.sort()
step_s = times[len(times) // 2]

# decode: prefill then 256 single-token steps with the KV cache (teacher-forced)
torch.cuda.empty_cache()
with torch.no_grad():
    t0 = time.perf_counter()
    out = model(input_ids=prompt, use_cache=True, logits_to_keep=1)
    past = out.past_key_values
    torch.cuda.synchronize()
    prefill = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t in range(T):
        out = model(input_ids=comp[:, t:t + 1], past_key_values=past, use_cache=True)
        past = out.past_key_values
    torch.cuda.synchronize()
    dec = time.perf_counter() - t0
res = {"step_s": step_s, "peak_gib": peak / 2**30, "peak_reserved_gib": peak_res / 2**30, "prefill_s": prefill, "decode_tok_s": NSEQ * T / dec,
       "torch": torch.__version__}

# rollouts as TRL samples them without vLLM: generate() on 8 prompts x 8 completions, temperature 1, no early stop
# (a failure here only drops this figure)
try:
    prompts8 = prompt[::8].repeat_interleave(8, dim=0)
    with torch.no_grad():
        torch.cuda.synchronize()
        t0 = time.perf_counter()
        g = model.generate(input_ids=prompts8, attention_mask=torch.ones_like(prompts8), do_sample=True, temperature=1.0, top_k=0, top_p=1.0,
                           max_new_tokens=a.gen_tokens, min_new_tokens=a.gen_tokens, pad_token_id=0)
        torch.cuda.synchronize()
        gen = time.perf_counter() - t0
    res["generate_tok_s"] = (g.shape[0] * (g.shape[1] - P)) / gen
except Exception as e:  # noqa: BLE001
    print(f"torch generate failed: {e}", flush=True)
print("TORCH " + json.dumps(res), flush=True)
