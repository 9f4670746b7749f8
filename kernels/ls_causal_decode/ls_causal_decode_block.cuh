// What the decode attention's two kernel files share (ls_causal_decode.cu, the scalar kernel and its combine;
// ls_causal_decode_vec.cu, the vector kernel): the block size, a fixed-order block reduction and the relative row of a key.
#pragma once
#include "ls_causal_decode/ls_causal_decode.cuh"
#include "common/row_vectors.cuh"
#include "common/dependent_launch.cuh"

#define DECODE_THREADS 128

// Block-wide reduction (max or sum) of one value per thread, in a fixed order.
template <bool MAX> TLS_DEVICE float block_reduce(float v, float* scratch)
{
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    v = MAX ? warp_max(v) : warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    float r = scratch[0];
    for (int k = 1; k < DECODE_THREADS / 32; ++k) r = MAX ? fmaxf(r, scratch[k]) : r + scratch[k];
    return r;
}

// The relative row (D elements) of key j of head h's list: Rc_{nc−1−j} for a compressed key (j < nc), R_a for window age
// a = j − nc.
template <typename T> TLS_DEVICE const T* decode_rel_row(const LsDecodeParams& p, int h, int nc, int j, int D)
{
    return j < nc ? (const T*)p.relc + ((i64)h * p.Nr + nc - 1 - j) * D : (const T*)p.rel + ((i64)h * p.W + j - nc) * D;
}
