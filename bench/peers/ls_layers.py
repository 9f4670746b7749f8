"""The attention layers the peers time, written here from the equations (../../../shared/reference/transformer-ls.md
sections 1.2-1.5, or the paper), not copied from the official code:

- LSAttention: the bidirectional Long-Short attention layer of the LRA code (no CLS, no padding mask): Q, K, V
  projections, LN_A on the keys and values, the dynamic projection P = softmax over positions of X Wp
  (K̄ = P K, V̄ = P V), LN_B on the landmarks, one softmax over the r landmarks and the segment window of 2e + w
  keys, W_o.
- FullAttention: the same width with PyTorch SDPA (flash / memory-efficient kernels).
- FlexWindowAttention: FlexAttention with a sliding-window mask |i - j| <= w, the block-sparse short-term branch alone.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class LSAttention(nn.Module):
    def __init__(self, dim=512, heads=8, window=128, rank=64, eps=1e-5):
        super().__init__()
        self.h, self.d, self.w, self.r = heads, dim // heads, window, rank
        self.e = max(window // 2, 1)
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(dim, dim) for _ in range(4))
        self.dconv_fc = nn.Linear(dim, heads * rank)
        self.dual_ln_l = nn.LayerNorm(dim, eps=eps)  # LN_A: all keys and values
        self.dual_ln_s = nn.LayerNorm(dim, eps=eps)  # LN_B: the projected landmarks

    def heads(self, t):  # [B, N, D] -> [B, H, N, d]
        b, n, _ = t.shape
        return t.view(b, n, self.h, self.d).transpose(1, 2)

    def forward(self, x):
        b, n, dim = x.shape
        h, d, w, r, e = self.h, self.d, self.w, self.r, self.e
        assert n % w == 0, f"N = {n} must be a multiple of w = {w}"
        q = self.heads(self.W_q(x)) * d ** -0.5
        k = self.heads(self.dual_ln_l(self.W_k(x)))
        v = self.heads(self.dual_ln_l(self.W_v(x)))

        # Dynamic projection: a softmax over the sequence axis for each of the H*r rows, in fp32.
        p = self.dconv_fc(x).float().softmax(dim=1).to(x.dtype)          # [B, N, H*r]
        p = p.view(b, n, h, r).permute(0, 2, 3, 1)                       # [B, H, r, N]
        kbar, vbar = p @ k, p @ v                                        # [B, H, r, d]
        ln_s = lambda t: self.dual_ln_s(t.transpose(1, 2).reshape(b, r, dim)).view(b, r, h, d).transpose(1, 2)
        kbar, vbar = ln_s(kbar), ln_s(vbar)

        # Segment-wise window: the w queries of segment s see keys [s*w - e, (s+1)*w + e), zero-padded at the ends.
        s = n // w
        kt = F.pad(k, (0, 0, e, e)).unfold(2, w + 2 * e, w)              # [B, H, S, d, w + 2e]
        vt = F.pad(v, (0, 0, e, e)).unfold(2, w + 2 * e, w)
        qs = q.reshape(b, h, s, w, d)
        local = torch.einsum("bhswd,bhsdk->bhswk", qs, kt)               # [B, H, S, w, w + 2e]
        pos = torch.arange(s, device=x.device)[:, None] * w - e + torch.arange(w + 2 * e, device=x.device)[None, :]
        local = local.masked_fill(((pos < 0) | (pos >= n))[None, None, :, None, :], float("-inf"))
        glob = torch.einsum("bhswd,bhrd->bhswr", qs, kbar)               # [B, H, S, w, r]

        a = torch.cat([glob, local], dim=-1).float().softmax(dim=-1).to(x.dtype)   # one softmax over r + 2e + w keys
        c = torch.einsum("bhswr,bhrd->bhswd", a[..., :r], vbar) + torch.einsum("bhswk,bhsdk->bhswd", a[..., r:], vt)
        return self.W_o(c.reshape(b, h, n, d).transpose(1, 2).reshape(b, n, dim))


class FullAttention(nn.Module):
    def __init__(self, dim=512, heads=8):
        super().__init__()
        self.h, self.d = heads, dim // heads
        self.W_q, self.W_k, self.W_v, self.W_o = (nn.Linear(dim, dim) for _ in range(4))

    def heads(self, t):
        b, n, _ = t.shape
        return t.view(b, n, self.h, self.d).transpose(1, 2)

    def attend(self, q, k, v):
        return F.scaled_dot_product_attention(q, k, v)

    def forward(self, x):
        b, n, dim = x.shape
        o = self.attend(self.heads(self.W_q(x)), self.heads(self.W_k(x)), self.heads(self.W_v(x)))
        return self.W_o(o.transpose(1, 2).reshape(b, n, dim))


class FlexWindowAttention(FullAttention):
    """Sliding-window attention |i - j| <= w through FlexAttention (compiled; the block mask is built once per length)."""

    def __init__(self, dim=512, heads=8, window=128):
        super().__init__(dim, heads)
        from torch.nn.attention.flex_attention import create_block_mask, flex_attention
        self.window, self._create, self._masks = window, create_block_mask, {}
        self._flex = torch.compile(flex_attention)

    def attend(self, q, k, v):
        n = q.shape[2]
        if n not in self._masks:
            w = self.window
            self._masks[n] = self._create(lambda b, h, qi, ki: (qi - ki).abs() <= w, None, None, n, n, device=q.device)
        return self._flex(q, k, v, block_mask=self._masks[n])
