"""Checks that the PyTorch LS peer (ls_layers.LSAttention) computes the library's function: it loads the weights,
input and output that `tls-bench export-layer --out DIR` wrote (DIR/layer.safetensors: the library's CPU forward,
float64 math rounded to float32), runs the peer on the same weights and input in float64, and compares.

    python3 check_ls_layer.py DIR        exit 0 when the outputs agree (max |diff| <= 1e-4 * max |y|), 1 otherwise

The bench's side-by-side numbers compare the same function only if this passes.
"""
import json
import sys

import torch

from ls_layers import LSAttention

DTYPES = {"F32": torch.float32, "F64": torch.float64, "BF16": torch.bfloat16}


def read_safetensors(path):
    """The tensors and metadata of a safetensors file, without the safetensors package."""
    with open(path, "rb") as f:
        n = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(n))
        data = f.read()
    meta = header.pop("__metadata__", {})
    tensors = {}
    for name, e in header.items():
        begin, end = e["data_offsets"]
        t = torch.frombuffer(bytearray(data[begin:end]), dtype=DTYPES[e["dtype"]])
        tensors[name] = t.reshape(e["shape"]).clone()
    return tensors, meta


def agree(got, want, rel):
    """(ok, a line): max |got − want| <= rel · max |want|."""
    err, scale = (got - want).abs().max().item(), want.abs().max().item()
    ok = err <= rel * scale
    return ok, f"max |diff| {err:.3e}, max |y| {scale:.3e}: {'same function' if ok else 'MISMATCH'}"


def main(folder):
    tensors, meta = read_safetensors(f"{folder}/layer.safetensors")
    cfg = json.loads(meta["config"])
    x, y = tensors.pop("x").double(), tensors.pop("y").double()
    layer = LSAttention(cfg["dim"], cfg["heads"], cfg["window"], cfg["rank"]).double()
    layer.load_state_dict({k: v.double() for k, v in tensors.items()}, strict=True)  # every name, every shape
    with torch.no_grad():
        out = layer(x)
    ok, said = agree(out, y, 1e-4)
    print(f"ls peer vs library: B={x.shape[0]} N={x.shape[1]} D={cfg['dim']} H={cfg['heads']} w={cfg['window']} r={cfg['rank']}: {said}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else "."))
