"""Times the PyTorch peers of the LS attention layer and writes rows in tls-bench's format (a *.rows.json list).

  python3 bench/peers/peers.py --out results/peers.rows.json [--tokens 65536] [--lengths 1024,4096,16384,65536]
      [--dtypes bf16,fp32] [--impls ls-eager,ls-compile,sdpa,flex] [--sweep-dtypes bf16] [--budget-s 420] [--sweep-budget-s 240]

Mode "step": 64K tokens per step (B = tokens / N), forward and forward + backward (y.backward(dy), every parameter
gradient), CUDA events, median of --runs after warm-up. Mode "sweep": batch 1, N doubling from --sweep-start until
out of memory, an error or the time budget. peak_bytes = torch.cuda.max_memory_allocated over a forward + backward
step (parameters, gradients and input included), the counterpart of the library allocator's high-water mark.
"""
import argparse
import json
import statistics
import sys
import time

import torch

from ls_layers import FlexWindowAttention, FullAttention, LSAttention

DTYPES = {"bf16": torch.bfloat16, "fp32": torch.float32}


def make(impl, dim, heads, window, rank, dtype):
    if impl.startswith("ls-"):
        m = LSAttention(dim, heads, window, rank)
    elif impl == "sdpa":
        m = FullAttention(dim, heads)
    elif impl == "flex":
        m = FlexWindowAttention(dim, heads, window)
    else:
        raise ValueError(f"--impls: unknown '{impl}' (ls-eager, ls-compile, sdpa, flex)")
    m = m.to("cuda", dtype)
    return torch.compile(m) if impl == "ls-compile" else m


def median_ms(fn, runs, warmup):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(runs):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def measured_row(row, began, budget_s, figures):
    """Fills row with figures() (a dict of its measured fields) unless the time budget, counted from began, is spent
    ("skipped (budget)"); out of memory ("oom") or any other failure ("error: ...") becomes the row's status: a peer that
    fails is a row that says so, not a lost run. Prints the row as a JSON line and returns it."""
    if time.time() - began > budget_s:
        row["status"] = "skipped (budget)"
    else:
        try:
            row.update(figures())
        except torch.cuda.OutOfMemoryError:
            row["status"] = "oom"
        except Exception as e:
            row["status"] = f"error: {type(e).__name__}: {str(e)[:200]}"
        torch.cuda.empty_cache()
    print(json.dumps(row), flush=True)
    return row


def measure(model, b, n, dim, dtype, runs, warmup):
    x = torch.randn(b, n, dim, device="cuda", dtype=dtype)
    dy = torch.randn(b, n, dim, device="cuda", dtype=dtype)

    def forward():
        with torch.no_grad():
            model(x)

    def train():
        for p in model.parameters():
            p.grad = None
        model(x).backward(dy)

    train()  # compiles where compiled; allocates gradients
    torch.cuda.synchronize()
    torch.cuda.reset_peak_memory_stats()
    train()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated()
    return median_ms(forward, runs, warmup), median_ms(train, runs, warmup), peak


def row(impl, dtype, mode, n, b, status, fwd=None, train=None, peak=None):
    return {"impl": "torch-" + impl, "dtype": dtype, "mode": mode, "n": n, "batch": b, "status": status,
            "forward_ms": fwd, "train_ms": train, "peak_bytes": peak}


def attempt(impl, model, b, n, args, dtype_name, runs=None):
    try:
        fwd, train, peak = measure(model, b, n, args.dim, DTYPES[dtype_name], runs or args.runs, args.warmup)
        return "ok", fwd, train, peak
    except torch.OutOfMemoryError:
        return "oom", None, None, None
    except Exception as e:  # a peer that cannot run a shape (e.g. a compile failure) is recorded, not fatal
        msg = f"{type(e).__name__}: {e}".splitlines()[0][:160]
        print(f"  {impl} {dtype_name} N={n}: {msg}", file=sys.stderr)
        return "error: " + msg.replace("|", "/"), None, None, None
    finally:
        torch.cuda.empty_cache()


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True)
    ap.add_argument("--tokens", type=int, default=65536)
    ap.add_argument("--lengths", default="1024,4096,16384,65536")
    ap.add_argument("--dtypes", default="bf16,fp32")
    ap.add_argument("--impls", default="ls-eager,ls-compile,sdpa,flex")
    ap.add_argument("--sweep-dtypes", default="bf16")
    ap.add_argument("--sweep-impls", default="ls-eager,sdpa,flex")
    ap.add_argument("--sweep-start", type=int, default=1024)
    ap.add_argument("--sweep-max", type=int, default=1 << 22)
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--sweep-runs", type=int, default=5)
    ap.add_argument("--sweep-time-cap-ms", type=float, default=3000, help="end a sweep once a forward + backward step takes longer")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--budget-s", type=float, default=420, help="stop starting new step measurements after this many seconds")
    ap.add_argument("--sweep-budget-s", type=float, default=240, help="the same for the sweeps, counted from their start")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--window", type=int, default=128)
    ap.add_argument("--rank", type=int, default=64)
    args = ap.parse_args()
    for name in args.dtypes.split(",") + args.sweep_dtypes.split(","):
        if name not in DTYPES:
            ap.error(f"--dtypes: '{name}' is not bf16 or fp32")
    lengths = [int(v) for v in args.lengths.split(",")]
    t0 = time.time()
    budget = [args.budget_s]
    over = lambda: time.time() - t0 > budget[0]
    print(f"torch {torch.__version__}, {torch.cuda.get_device_name()}, CUDA {torch.version.cuda}")
    rows = []

    def log(r):
        rows.append(r)
        with open(args.out, "w") as f:  # after every row: a run cut short still leaves its rows
            json.dump(rows, f, indent=1)
        print(f"{r['impl']:<17}{r['dtype']:<6}{r['mode']:<6} N={r['n']:>8} B={r['batch']:>3} {r['status']:<6}"
              f" fwd {r['forward_ms'] or 0:9.3f} ms  fwd+bwd {r['train_ms'] or 0:9.3f} ms  peak {(r['peak_bytes'] or 0) / 2**20:9.0f} MiB", flush=True)

    torch.manual_seed(0)
    for dtype_name in args.dtypes.split(","):
        for impl in args.impls.split(","):
            model = None
            for n in lengths:
                b = max(1, args.tokens // n)
                if over():
                    log(row(impl, dtype_name, "step", n, b, "skipped (time budget)"))
                    continue
                if model is None:
                    model = make(impl, args.dim, args.heads, args.window, args.rank, DTYPES[dtype_name])
                log(row(impl, dtype_name, "step", n, b, *attempt(impl, model, b, n, args, dtype_name)))
            del model
            torch.cuda.empty_cache()

    budget[0] = time.time() - t0 + args.sweep_budget_s
    for dtype_name in args.sweep_dtypes.split(","):
        for impl in args.sweep_impls.split(","):
            model = make(impl, args.dim, args.heads, args.window, args.rank, DTYPES[dtype_name])
            n = args.sweep_start
            while n <= args.sweep_max:
                if over():
                    log(row(impl, dtype_name, "sweep", n, 1, "skipped (time budget)"))
                    break
                r = row(impl, dtype_name, "sweep", n, 1, *attempt(impl, model, 1, n, args, dtype_name, args.sweep_runs))
                log(r)
                if r["status"] != "ok":
                    break
                if r["train_ms"] > args.sweep_time_cap_ms:
                    log(row(impl, dtype_name, "sweep", 2 * n, 1, "time-cap"))
                    break
                n *= 2
            del model
            torch.cuda.empty_cache()

    print(f"wrote {args.out} ({len(rows)} rows, {time.time() - t0:.0f} s)")


if __name__ == "__main__":
    main()
