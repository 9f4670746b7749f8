// Params of kernels/ls_projection/, shared by its kernels and mirrored field for field in src/TransformerLS/Ops/ (the *Cuda.cs
// launcher). The layout lines below are the contract: sizeof and the offset of the last field, checked here at compile
// time and against the C# mirror by LayoutContractTests.
#pragma once
#include "common/prelude.cuh"

struct LsProjectionParams
{
    const void* s;        // [B, n, H*r] scores, feature h*r + k = rank k of head h
    const void* k;        // [B, H, n, d]
    const void* v;        // [B, H, n, d]
    const float* mask;    // [B, n] or null
    float* colmax;        // [B, H*r]
    float* colsum;        // [B, H*r]
    float* kbar_acc;      // forward: fp32 [B, H, r, d], zeroed by the launcher
    float* vbar_acc;
    const void* dkbar;    // backward inputs [B, H, r, d]
    const void* dvbar;
    double* coldot;       // backward: Σ_t P·dP per column [B, H*r], zeroed by the launcher
    void* dk;             // backward outputs [B, H, n, d]
    void* dv;
    void* ds;             // [B, n, H*r]
    int B, H, n, d, r, accumulate, phase;
};

TLS_PARAMS_LAYOUT(LsProjectionParams, phase, 144, 136)
