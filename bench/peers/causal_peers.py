"""Times the PyTorch peer of the causal LS model (causal_lm.CausalLSLM) and writes rows in `tls-bench model`'s format
(impl, dtype, layers, length, memory, batch, step_ms, tokens_per_s, peak_bytes, status).

  python3 bench/peers/causal_peers.py --out results/model-peers.rows.json [--shapes 2048x4,8192x1] [--dtypes bf16,fp32]
      [--impls eager,compile] [--runs 10] [--warmup 3] [--budget-s 300]

A step is what `tls train --task lm` does: forward of one block of L tokens after M = L remembered states per layer,
the mean cross entropy, backward, AdamW (weight decay 0.01), the memories carried to the next step. bf16 runs the
parameters and activations in bf16 (softmaxes in fp32), as the library's bf16 model does. CUDA events, median of
--runs after --warmup. peak_bytes = torch.cuda.max_memory_allocated over the timed steps. The model: enwik8-base
(12 layers, D 512, 8 heads, Dff 2048, w 512, l 16, r 1) over 256 byte values.
"""
import argparse
import json
import sys
import time

import torch

from causal_lm import CausalLSLM
from peers import measured_row, median_ms

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def measure(impl, dtype, L, B, args):
    torch.manual_seed(0)
    model = CausalLSLM(256, 512, 8, 2048, args.layers, 512, 16, 1, L, L).to("cuda", DTYPES[dtype])
    opt = torch.optim.AdamW(model.parameters(), lr=2.5e-4, weight_decay=0.01)
    fwd = torch.compile(model) if impl == "compile" else model
    tokens = torch.randint(0, 256, (B, L + 1), device="cuda")
    mems = [torch.zeros(B, L, 512, device="cuda", dtype=DTYPES[dtype]) for _ in range(args.layers)]

    def step():
        nonlocal mems
        logits, mems = fwd(tokens[:, :L], mems)
        loss = torch.nn.functional.cross_entropy(logits.float().reshape(-1, 256), tokens[:, 1:].reshape(-1))
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for _ in range(args.warmup):
        step()
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    ms = median_ms(step, args.runs, 0)
    return ms, torch.cuda.max_memory_allocated()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--shapes", default="2048x4,8192x1", help="LxB, comma-separated (M = L)")
    ap.add_argument("--dtypes", default="bf16,fp32")
    ap.add_argument("--impls", default="eager,compile")
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=300)
    args = ap.parse_args()
    rows, began = [], time.time()
    for shape in args.shapes.split(","):
        L, B = (int(v) for v in shape.split("x"))
        for dtype in args.dtypes.split(","):
            for impl in args.impls.split(","):
                row = dict(impl=f"torch-{impl}-dense", dtype=dtype, layers=args.layers, length=L, memory=L, batch=B,
                           step_ms=None, tokens_per_s=None, peak_bytes=None, status="ok")

                def figures():
                    ms, peak = measure(impl, dtype, L, B, args)
                    return dict(step_ms=ms, tokens_per_s=B * L / (ms / 1000), peak_bytes=peak)

                rows.append(measured_row(row, began, args.budget_s, figures))
    with open(args.out, "w") as f:
        json.dump(rows, f, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
