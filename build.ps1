#!/usr/bin/env pwsh
# Thin convenience over the README's commands.
#   ./build.ps1 build | test | check | kernels | bench
param([ValidateSet('build', 'test', 'check', 'kernels', 'bench')][string]$Target = 'build')
$ErrorActionPreference = 'Stop'
Set-Location $PSScriptRoot

function Run([string]$cmd, [string[]]$cmdArgs) {
    & $cmd @cmdArgs
    if ($LASTEXITCODE -ne 0) { throw "$cmd $($cmdArgs -join ' ') failed with exit code $LASTEXITCODE" }
}

switch ($Target) {
    'build'   { Run dotnet @('build', 'TransformerLS.Native.sln', '-c', 'Release') }
    'test'    { Run dotnet @('run', '--project', 'tests/TransformerLS.Tests', '-c', 'Release') }
    'check'   { Run dotnet @('run', '--project', 'src/TransformerLS.Cli', '-c', 'Release', '--', 'check') }
    'kernels' { Run cmake @('-S', 'cmake', '-B', 'build/kernels'); Run cmake @('--build', 'build/kernels') }
    'bench'   { throw 'No benchmarks yet: bench/ is built out by issue 5 (see bench/README.md).' }
}
