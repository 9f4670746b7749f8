// Params of kernels/sampling/, mirrored field for field by SampleRowsParams in src/TransformerLS/Ops/Sampling/SamplingCuda.cs.
// The layout line below is the contract (sizeof and the offset of the last field; LayoutContractTests reads it back).
#pragma once
#include "common/prelude.cuh"

// Largest vocabulary one block sorts in shared memory (the launcher refuses more).
#define TLS_SAMPLE_MAX_VOCAB 1024

struct SampleRowsParams
{
    const void* logits;     // [N, V]
    const float* uniforms;  // [N]: the row's draw in [0, 1); negative = inactive row (token −1)
    float* tokens;          // [N]: the drawn index, as float32
    i64 rows;
    int vocab;
    int top_k;              // 0: no cut
    float temperature;      // 0: greedy
    float top_p;            // 1: no cut
};

TLS_PARAMS_LAYOUT(SampleRowsParams, top_p, 48, 44)
