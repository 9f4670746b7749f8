"""Checks that the PyTorch causal peer (causal_lm.CausalLSLM) computes the library's function: it loads the tiny model,
the two-block byte streams and the logits that `tls-bench export-causal --out DIR` wrote (DIR/causal_lm.safetensors:
the library's CPU forward in float64, the second block reading the first's memories), runs the peer on the same
weights and bytes in float64, and compares.

    python3 check_causal_lm.py DIR        exit 0 when the logits agree (max |diff| <= 1e-8 * max |logits|), 1 otherwise
"""
import json
import sys

import torch

from causal_lm import CausalLSLM
from check_ls_layer import agree, read_safetensors


def main(folder):
    tensors, meta = read_safetensors(f"{folder}/causal_lm.safetensors")
    cfg = json.loads(meta["config"])
    blocks = cfg.pop("blocks")
    tokens, want = tensors.pop("tokens").long(), tensors.pop("logits").double()
    model = CausalLSLM(**cfg).double()
    model.load(tensors)
    B, L, M, D = tokens.shape[0], cfg["length"], cfg["memory"], cfg["dim"]
    mems = [torch.zeros(B, M, D, dtype=torch.float64) for _ in range(cfg["layers"])] if M > 0 else []
    got = []
    with torch.no_grad():
        for k in range(blocks):
            logits, mems = model(tokens[:, k * L:(k + 1) * L], mems)
            got.append(logits)
    got = torch.cat(got, dim=1)
    ok, said = agree(got, want, 1e-8)
    print(f"causal peer vs library: B={B} {blocks} blocks of L={L}, M={M}, D={D} H={cfg['heads']} w={cfg['window']} l={cfg['chunk']} r={cfg['rank']}: {said}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
