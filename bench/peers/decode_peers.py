"""Times the PyTorch peer of generation: the causal LS model (causal_lm.CausalLSLM) drawing bytes as the reference code
would, re-running the current block of L tokens (right-padded) for every byte after the context's full blocks are
committed to the memories, and writes rows in `tls-bench decode`'s format (impl, dtype, batch, context,
prefill_tokens_per_s, decode_tokens_per_s, ms_per_token, peak_bytes, status).

  python3 bench/peers/decode_peers.py --out results/decode-peers.rows.json [--contexts 1024,8192,32768]
      [--dtypes bf16] [--impls eager,compile] [--steps 16] [--memory M] [--budget-s 300]

Batch 1, enwik8-base (12 layers, D 512, 8 heads, Dff 2048, w 512, l 16, r 1), L = 2048 and M raised to the longest
context (rounded up to a whole chunk), as `tls-bench decode` does. A step feeds the byte the step before drew, runs the
padded block (committing it to the memories when it completes), draws the next byte on the device at temperature 1
(torch.multinomial) and brings it to the host (.item(), as a generator needs it): ms_per_token is the median wall time
of --steps steps. The prefill is the context's blocks committed plus the first byte's block; one untimed block forward
first (kernels, torch.compile). Padding is harmless: a query sees only earlier window rows and earlier chunks.
peak_bytes = torch.cuda.max_memory_allocated over the row.
"""
import argparse
import json
import statistics
import sys
import time

import torch

from causal_lm import CausalLSLM
from peers import measured_row

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}
VOCAB, DIM, HEADS, HIDDEN, WINDOW, CHUNK, RANK = 256, 512, 8, 2048, 512, 16, 1


def measure(impl, dtype, context, memory, args):
    torch.manual_seed(0)
    L, dt = args.length, DTYPES[dtype]
    model = CausalLSLM(VOCAB, DIM, HEADS, HIDDEN, args.layers, WINDOW, CHUNK, RANK, L, memory).to("cuda", dt).eval()
    fwd = torch.compile(model) if impl == "compile" else model
    prompt = torch.randint(0, VOCAB, (1, context), device="cuda")
    block = torch.zeros(1, L, dtype=torch.long, device="cuda")
    fresh = lambda: [torch.zeros(1, memory, DIM, device="cuda", dtype=dt) for _ in range(args.layers)]

    def draw(logits_row):
        return torch.multinomial(torch.softmax(logits_row.float(), dim=-1), 1).item()

    with torch.no_grad():
        fwd(block, fresh())  # untimed: kernels load, torch.compile compiles
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        mems = fresh()
        began = time.perf_counter()
        full = context // L * L
        logits = None
        for s in range(0, full, L):
            logits, mems = fwd(prompt[:, s:s + L], mems)
        n = context - full
        if n > 0:
            block[0, :n] = prompt[0, full:]
            logits, _ = fwd(block, mems)
        nxt = draw(logits[0, (n if n > 0 else L) - 1])
        prefill = context / (time.perf_counter() - began)
        times = []
        for _ in range(args.steps):
            t0 = time.perf_counter()
            block[0, n] = nxt
            n += 1
            if n == L:  # the block completes: commit it; the next byte comes from its last position
                logits, mems = fwd(block, mems)
                nxt = draw(logits[0, L - 1])
                block.zero_()
                n = 0
            else:
                logits, _ = fwd(block, mems)
                nxt = draw(logits[0, n - 1])
            times.append(time.perf_counter() - t0)
    ms = 1000 * statistics.median(times)
    return prefill, ms, torch.cuda.max_memory_allocated()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--contexts", default="1024,2048", help="context lengths, comma-separated")
    ap.add_argument("--dtypes", default="bf16")
    ap.add_argument("--impls", default="eager,compile")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--length", type=int, default=2048, help="block length L")
    ap.add_argument("--memory", type=int, default=None, help="remembered states M (default: the longest context)")
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--budget-s", type=float, default=300)
    args = ap.parse_args()
    contexts = [int(c) for c in args.contexts.split(",")]
    if min(contexts) < 1 or args.steps < 1:
        ap.error("contexts and --steps must be at least 1")
    memory = args.memory or max(contexts)
    memory += (CHUNK - memory % CHUNK) % CHUNK
    rows, began = [], time.time()
    for dtype in args.dtypes.split(","):
        for impl in args.impls.split(","):
            for context in contexts:
                row = dict(impl=f"torch-{impl}-block-recompute", dtype=dtype, batch=1, context=context, prefill_tokens_per_s=None,
                           decode_tokens_per_s=None, ms_per_token=None, peak_bytes=None, status="ok")

                def figures():
                    prefill, ms, peak = measure(impl, dtype, context, memory, args)
                    return dict(prefill_tokens_per_s=prefill, decode_tokens_per_s=1000 / ms, ms_per_token=ms, peak_bytes=peak)

                rows.append(measured_row(row, began, args.budget_s, figures))
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
