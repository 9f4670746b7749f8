"""The causal Long-Short LM (enwik8 code, ../../../shared/reference/transformer-ls.md section 3) in PyTorch, written from
the reference equations for the side-by-side: the library's parameter names and shapes (r_w_bias, r_r_bias [H, d]),
one block of L tokens after M remembered layer inputs per layer.

The attention is dense and masked: window logits over the P + L window rows and compressed logits over the Nc
compressed rows for every query, then the band and chunk-causal masks (the official code extracts the band in tiles
of w instead; the function is the same). check_causal_lm.py checks it against the library on a tiny shape.
"""
import math

import torch
import torch.nn.functional as F


def sinusoids(count, dim, dtype=torch.float64, device=None):
    """[count, dim]: sin(δ / 10000^(2i/dim)) in the first half, cos in the second, δ = 0 … count − 1."""
    pos = torch.arange(count, dtype=torch.float64, device=device)[:, None]
    inv = torch.pow(10000.0, -2.0 * torch.arange(dim // 2, dtype=torch.float64, device=device) / dim)[None, :]
    angle = pos * inv
    return torch.cat([torch.sin(angle), torch.cos(angle)], dim=1).to(dtype)


def split(x, heads):
    """[B, T, H·d] → [B, H, T, d]."""
    B, T, D = x.shape
    return x.reshape(B, T, heads, D // heads).transpose(1, 2)


def merge(x):
    """[B, H, T, d] → [B, T, H·d]."""
    B, H, T, d = x.shape
    return x.transpose(1, 2).reshape(B, T, H * d)


def chunk_projection(l, r, scores, x):
    """scores [B, T, H·r] (column h·r + k), x [B, H, T, d], T a multiple of l → [B, H, (T/l)·r, d]: per chunk, head and
    rank, the softmax over the chunk's l positions weights its rows."""
    B, H, T, d = x.shape
    C = T // l
    s = scores.reshape(B, C, l, H, r)
    p = torch.softmax(s.float() if s.dtype in (torch.bfloat16, torch.float16) else s, dim=2).to(x.dtype)  # fp32 at least
    out = torch.einsum("bcthk,bhctd->bhckd", p, x.reshape(B, H, C, l, d))
    return out.reshape(B, H, C * r, d)


def layer_norm(x, w, b, eps=1e-5):
    return F.layer_norm(x, (x.shape[-1],), w, b, eps)


def causal_attention(q, kw, vw, u, vb, rel, kc, vc, relc, w, l, r, Mc, P):
    """One softmax per query i over the window rows t (position t − P, age a = i + P − t, 0 <= a < w) with logits
    (σq + u)·k_t + (σq + v)·R_a, and the compressed rows n < (Mc + ⌊i/l⌋)·r with σq·(K̄_n + Rc_δ),
    δ = (Mc + ⌊i/l⌋)·r − 1 − n."""
    B, H, L, d = q.shape
    T, Nc = kw.shape[2], kc.shape[2]
    qs = q / math.sqrt(d)
    dev = q.device
    i = torch.arange(L, device=dev)[:, None]
    # window
    t = torch.arange(T, device=dev)[None, :]
    age = i + P - t
    band = (age >= 0) & (age < w)
    ac = torch.matmul(qs + u[None, :, None, :], kw.transpose(-1, -2))                  # [B, H, L, T]
    bd = torch.matmul(qs + vb[None, :, None, :], rel.transpose(-1, -2)[None])          # [B, H, L, w] by age
    bd = torch.gather(bd, 3, age.clamp(0, w - 1).expand(B, H, L, T))
    win = (ac + bd).masked_fill(~band, float("-inf"))
    # compressed
    n = torch.arange(Nc, device=dev)[None, :]
    seen = (Mc + i // l) * r
    delta = seen - 1 - n
    visible = n < seen
    qc = torch.matmul(qs, kc.transpose(-1, -2))                                         # [B, H, L, Nc]
    qr = torch.matmul(qs, relc.transpose(-1, -2)[None])                                 # [B, H, L, Nc] by δ
    qr = torch.gather(qr, 3, delta.clamp(0, Nc - 1).expand(B, H, L, Nc))
    cmp = (qc + qr).masked_fill(~visible, float("-inf"))
    logits = torch.cat([cmp, win], dim=-1)
    p = torch.softmax(logits.float() if logits.dtype in (torch.bfloat16, torch.float16) else logits, dim=-1).to(q.dtype)
    return torch.matmul(p[..., :Nc], vc) + torch.matmul(p[..., Nc:], vw)


class CausalLSLM(torch.nn.Module):
    """Parameters under the library's state_dict names (dots kept; see state_dict / load)."""

    def __init__(self, vocab, dim, heads, hidden, layers, window, chunk, rank, length, memory, eps=1e-5):
        super().__init__()
        self.cfg = dict(vocab=vocab, dim=dim, heads=heads, hidden=hidden, layers=layers, window=window, chunk=chunk, rank=rank, length=length, memory=memory)
        self.eps = eps
        D, H, d, Hr, Fh = dim, heads, dim // heads, heads * rank, hidden
        shapes = {"in_emb.weight": (vocab, D), "out_emb.bias": (vocab,)}
        for i in range(layers):
            b = f"layers.{i}."
            for name in ("proj_query", "proj_key", "proj_val", "proj_out", "r_net", "r_net_chunk"):
                shapes[b + f"attn.{name}.weight"] = (D, D)
            shapes[b + "attn.r_net_chunk.bias"] = (D,)
            shapes[b + "attn.dconv_1.weight"] = (Hr, D)
            shapes[b + "attn.dconv_1.bias"] = (Hr,)
            shapes[b + "attn.r_w_bias"] = (H, d)
            shapes[b + "attn.r_r_bias"] = (H, d)
            for ln in ("attn.dual_ln_win", "attn.dual_ln_dproj", "norm1", "norm2"):
                shapes[b + ln + ".weight"] = (D,)
                shapes[b + ln + ".bias"] = (D,)
            shapes[b + "ff.fc1.weight"] = (Fh, D)
            shapes[b + "ff.fc1.bias"] = (Fh,)
            shapes[b + "ff.fc2.weight"] = (D, Fh)
            shapes[b + "ff.fc2.bias"] = (D,)
        self.names = sorted(shapes)
        self.params = torch.nn.ParameterDict()
        g = torch.Generator().manual_seed(1)
        for name in self.names:
            if name.endswith(".bias"):
                init = torch.zeros(shapes[name])
            elif name.endswith("weight") and ("norm" in name or "dual_ln" in name):
                init = 1 + 0.02 * torch.randn(shapes[name], generator=g)
            else:
                init = 0.02 * torch.randn(shapes[name], generator=g)
            self.params[name.replace(".", "__")] = torch.nn.Parameter(init)

    def p(self, name):
        return self.params[name.replace(".", "__")]

    def load(self, tensors):
        """Copies tensors[name] into every parameter (each name and shape required)."""
        for name in self.names:
            t = tensors[name]
            assert tuple(t.shape) == tuple(self.p(name).shape), f"{name}: {tuple(t.shape)} vs {tuple(self.p(name).shape)}"
            with torch.no_grad():
                self.p(name).copy_(t)

    def attention(self, b, h, c, sin_w, sin_c):
        cfg = self.cfg
        H, w, l, r = cfg["heads"], cfg["window"], cfg["chunk"], cfg["rank"]
        M = 0 if c is None else c.shape[1]
        P = min(M, w - 1)
        W = lambda name: self.p(b + name + ".weight")
        q = split(h @ W("proj_query").T, H)
        xw = torch.cat([c[:, M - P:], h], dim=1) if P > 0 else h
        kraw, vraw = xw @ W("proj_key").T, xw @ W("proj_val").T
        kw = split(layer_norm(kraw, W("dual_ln_win"), self.p(b + "dual_ln_win.bias"), self.eps), H)
        vw = split(layer_norm(vraw, W("dual_ln_win"), self.p(b + "dual_ln_win.bias"), self.eps), H)
        sb = h @ W("dconv_1").T + self.p(b + "dconv_1.bias")
        kb = chunk_projection(l, r, sb, split(kraw[:, P:], H))
        vb = chunk_projection(l, r, sb, split(vraw[:, P:], H))
        if M > 0:
            sc = c @ W("dconv_1").T + self.p(b + "dconv_1.bias")
            pc = merge(chunk_projection(l, r, sc, split(c, H)))
            kb = torch.cat([split(pc @ W("proj_key").T, H), kb], dim=2)
            vb = torch.cat([split(pc @ W("proj_val").T, H), vb], dim=2)
        kc = split(layer_norm(merge(kb), W("dual_ln_dproj"), self.p(b + "dual_ln_dproj.bias"), self.eps), H)
        vc = split(layer_norm(merge(vb), W("dual_ln_dproj"), self.p(b + "dual_ln_dproj.bias"), self.eps), H)
        D = h.shape[-1]
        rel = (sin_w @ W("r_net").T).reshape(w, H, D // H).transpose(0, 1)
        relc = (sin_c @ W("r_net_chunk").T + self.p(b + "r_net_chunk.bias")).reshape(sin_c.shape[0], H, D // H).transpose(0, 1)
        o = causal_attention(q, kw, vw, self.p(b + "r_w_bias"), self.p(b + "r_r_bias"), rel, kc, vc, relc, w, l, r, M // l, P)
        return merge(o) @ W("proj_out").T

    def forward(self, tokens, mems):
        """tokens [B, L] (int64), mems: one [B, M, D] per layer (or empty when M = 0) → logits [B, L, V], next mems."""
        cfg = self.cfg
        D, L, M, l, r = cfg["dim"], tokens.shape[1], cfg["memory"], cfg["chunk"], cfg["rank"]
        E = self.p("in_emb.weight")
        dt, dev = E.dtype, E.device
        sin_w = sinusoids(cfg["window"], D, dt, dev)
        sin_c = sinusoids((M // l + (L + l - 1) // l) * r, D, dt, dev)
        x = E[tokens] * math.sqrt(D)
        new_mems = []
        for i in range(cfg["layers"]):
            b = f"layers.{i}."
            mem = mems[i] if M > 0 else None
            if M > 0:
                new_mems.append(torch.cat([mem, x], dim=1)[:, -M:].detach())
            h1 = layer_norm(x, self.p(b + "norm1.weight"), self.p(b + "norm1.bias"))
            c = layer_norm(mem, self.p(b + "norm1.weight"), self.p(b + "norm1.bias")) if M > 0 else None
            h2 = h1 + self.attention(b + "attn.", h1, c, sin_w, sin_c)
            h3 = layer_norm(h2, self.p(b + "norm2.weight"), self.p(b + "norm2.bias"))
            f = F.gelu(h3 @ self.p(b + "ff.fc1.weight").T + self.p(b + "ff.fc1.bias"))
            x = h3 + f @ self.p(b + "ff.fc2.weight").T + self.p(b + "ff.fc2.bias")
        return x @ E.T + self.p("out_emb.bias"), new_mems
