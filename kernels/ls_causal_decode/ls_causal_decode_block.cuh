// What the decode attention's two kernel files share (ls_causal_decode.cu, the scalar kernel and its combine;
// ls_causal_decode_vec.cu, the vector kernel): the block size and a fixed-order block reduction.
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
