// What the bf16 LS attention kernels on the tensor cores share (ls_attention_mma.cu: forward; ls_attention_bwd_mma.cu:
// backward): the block shapes, the query block's key list as tiles, and loading them into shared memory.
#pragma once
#include "ls_attention/ls_attention.cuh"
#include "common/mma_tiles.cuh"

#define QB 64
#define KT 64
#define NWARP 4

// Tile `tile` of the block's key list: landmark tiles first (ceil(r/KT) of them), then window tiles.
struct Tile
{
    bool landmarks;
    int first;   // first landmark index, or first window position
    int count;   // keys of the list in this tile (≤ KT)
};

TLS_DEVICE Tile tile_of(const LsAttentionParams& p, const Block& k, int tile)
{
    const int lt = (p.r + KT - 1) / KT;
    if (tile < lt) return Tile{true, tile * KT, min(KT, p.r - tile * KT)};
    int t0 = (tile - lt) * KT;
    return Tile{false, k.wstart + t0, min(KT, p.w + 2 * p.e - t0)};
}

TLS_DEVICE int tile_count(const LsAttentionParams& p) { return (p.r + KT - 1) / KT + (p.w + 2 * p.e + KT - 1) / KT; }

// Row `key` of the tile in global memory (element offset), or -1 where the key is absent, out of range or padded.
TLS_DEVICE i64 key_row(const LsAttentionParams& p, const Block& k, const Tile& t, int key)
{
    if (key >= t.count) return -1;
    if (t.landmarks) return ((i64)k.bh * p.r + t.first + key) * p.d;
    int j = t.first + key;
    return j >= 0 && j < p.n && is_token(p, k.b, j) ? k.base + (i64)j * p.d : -1;
}

// Loads the tile's K and V rows; returns (block-uniformly) whether any key of the tile exists.
template <int D>
TLS_DEVICE bool load_tile(const LsAttentionParams& p, const Block& k, const Tile& t, u16* Ks, u16* Vs, i64* rows)
{
    for (int i = threadIdx.x; i < KT; i += blockDim.x) rows[i] = key_row(p, k, t, i);
    __syncthreads();
    load_rows<D>(Ks, t.landmarks ? p.kbar : p.k, rows, KT);
    load_rows<D>(Vs, t.landmarks ? p.vbar : p.v, rows, KT);
    cp_async_commit();
    bool any = threadIdx.x < KT && rows[threadIdx.x] >= 0;
    cp_async_wait_all();
    return __syncthreads_or(any);
}

// Shared memory both kernels start with: key rows of the tile, then the queries, K and V tiles as bf16.
struct Smem
{
    i64* rows;
    u16 *Qs, *Ks, *Vs;
};

// Carves the common part (the backward carves on from `at`) and loads the block's queries.
template <int D> TLS_DEVICE Smem start(const LsAttentionParams& p, const Block& k, unsigned char*& at)
{
    Smem s;
    s.rows = (i64*)at;
    s.Qs = (u16*)(s.rows + KT);
    s.Ks = s.Qs + QB * STRIDE(D);
    s.Vs = s.Ks + KT * STRIDE(D);
    at = (unsigned char*)(s.Vs + KT * STRIDE(D));
    load_consecutive<D>(s.Qs, p.q, k.base + (i64)k.q0 * D, k.nq, QB, s.rows);
    return s;
}

