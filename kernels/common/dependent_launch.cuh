// Programmatic dependent launch (sm_90+; no-ops elsewhere, and when the kernel was launched plainly). A kernel launched
// with CudaKernel.LaunchDependent may start while the stream's previous kernel still runs: it must call
// grid_dependency_wait() before it reads what that kernel writes (or writes what that kernel reads); what it reads from
// tensors no earlier kernel of the step writes (weights, biases) may load before. grid_dependents_launch() lets the next
// dependent launch start its own prologue while this kernel runs.
#pragma once
#include "common/prelude.cuh"

TLS_DEVICE void grid_dependency_wait()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

TLS_DEVICE void grid_dependents_launch()
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}
