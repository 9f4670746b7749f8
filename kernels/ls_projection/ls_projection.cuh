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
    float* colmax;        // [B, H*r]: the forward writes them, the backward reads them
    float* colsum;        // [B, H*r]
    void* kbar;           // forward outputs [B, H, r, d]
    void* vbar;
    float* pmax;          // forward scratch: per token group, the column max [B, G, H*r] ...
    double* psum;         // ... and Σ exp(s − max) over the group's tokens [B, G, H*r]
    float* kpart;         // forward scratch: per token group, the partial K̄ [G, B, H, r, d] ...
    float* vpart;         // ... and V̄
    const void* dkbar;    // backward inputs [B, H, r, d]
    const void* dvbar;
    double* cpart;        // backward scratch: per token group, Σ_t P·dP per column [B, G, H*r]
    double* coldot;       // backward: the groups' sums in group order [B, H*r]
    void* dk;             // backward outputs [B, H, n, d]
    void* dv;
    void* ds;             // [B, n, H*r]
    float* kbar32;        // or null: the forward also writes K̄ and V̄ unrounded [B, H, r, d] (the landmarks tensor's two halves),
    float* vbar32;        // from which the backward takes Σ_t P·dP = K̄·dK̄ + V̄·dV̄ per column and runs in one pass
    int B, H, n, d, r;
    int groups;           // G token groups of group_tokens consecutive tokens (the last may be shorter)
    int group_tokens;
    int accumulate, phase;
};

TLS_PARAMS_LAYOUT(LsProjectionParams, phase, 208, 200)

// Whether token t of batch b takes part (no mask, or a nonzero mask entry): padding has P = 0.
TLS_DEVICE bool proj_token(const LsProjectionParams& p, int b, int t) { return !p.mask || p.mask[(i64)b * p.n + t] != 0.f; }
