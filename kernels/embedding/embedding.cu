// Embedding lookup y[i] = W[token_i] over weight [V, D], and its gradient dW[token_i] += dy[i] (float32, atomic:
// a token repeats). Tokens are indices stored as float32 (exact below 2^24); a negative token is padding (a zero
// row, no gradient); a token >= V gives a NaN row, never a read past the table (the CPU backend throws).
// Reference: src/TransformerLS/Ops/Embedding/Embedding.cs.
#include "embedding/embedding.cuh"

template <typename T> __device__ void embedding_fwd(EmbeddingParams p)
{
    GRID_STRIDE(i, p.n * p.dim)
    {
        int t = (int)p.tokens[i / p.dim];
        float v = t < 0 ? 0.f : t < p.vocab ? load<T>(p.weight, (i64)t * p.dim + i % p.dim) : __int_as_float(0x7fc00000);
        store<T>(p.y, i, v);
    }
}

template <typename T> __device__ void embedding_bwd(EmbeddingParams p)
{
    GRID_STRIDE(i, p.n * p.dim)
    {
        int t = (int)p.tokens[i / p.dim];
        if (t >= 0 && t < p.vocab) atomicAdd(p.dweight + (i64)t * p.dim + i % p.dim, load<T>(p.dy, i));
    }
}

TLS_INSTANTIATE(embedding_fwd, EmbeddingParams)
TLS_INSTANTIATE(embedding_bwd, EmbeddingParams)
