using TransformerLS.Backends;
using TransformerLS.Cuda;
using TransformerLS.Graphs;
using TransformerLS.Layers;
using TransformerLS.Ops;
using TransformerLS.Tensors;

namespace TransformerLS.Models;

/// <summary>
/// Incremental decoding of the causal LM for a batch of sequences, each at its own position: one token per sequence
/// per <see cref="Step"/>, costing O(w + (M + L)·r/l) attention work and O(D²) per layer, not a block of L.
/// <para>
/// The result equals the block forward (<see cref="CausalLm.BuildGraph"/>, blocks of L committed to M-token memories,
/// the last block right-padded) at every position. Per layer and sequence the cache holds:
/// the window ring of the last w positions' keys and values (after LN_W; slot t mod w); the current chunk's normed
/// states, projection scores and raw keys/values (l rows); the block-path compressed keys of the current block's
/// completed chunks (after LN_P); and a ring of C = M/l + L/l cache-path compressed chunks (compress the normed
/// states, then W_k / W_v, then LN_P; chunk a in slot a mod C), which become a block's cache chunks once it starts.
/// Positions before the stream are the zero states the block forward's initial memory holds; the rings start with
/// their keys. A chunk is compressed both ways when it completes (reference section 3.3: the two paths differ).
/// </para>
/// Requires L to be a multiple of the chunk length l (the reference requires it too). <see cref="Step"/> brings the
/// log-probabilities to the host; <see cref="StepSample"/> draws the next tokens (on the GPU on the device). The layers'
/// caches and their step are in CausalLmDecoder.Layer.cs.
/// </summary>
public sealed partial class CausalLmDecoder : IDisposable
{
    readonly CausalLm _model;
    readonly IBackend _be;
    readonly Layer[] _layers;
    readonly long[] _pos;
    readonly int B, D, H, Hd, W, Lc, R, L, M, P, Mc, C, Lb, V;
    // Per-step host inputs, packed [tokens B | state 4B | rowsW B | rowsChunk B | rowsBlock B | rowsRing B | draws B] so
    // that one copy uploads them (a host-to-device copy waits for the stream: one a step, before its graph), and their
    // device tensors (on the GPU views into one buffer; on the CPU one tensor each).
    const int Packed = 10;
    readonly float[] _host;
    readonly Tensor _tPacked;
    readonly Tensor[] _tParts;
    readonly int[] _partAt;     // where each part starts in the packed array
    readonly Tensor _tTokens, _tState, _tRowsW, _tRowsChunk, _tRowsBlock, _tRowsRing;
    readonly Tensor _tLogits; // [B, 1, V] in the model's dtype: where every step's logits land
    readonly byte[] _logitBytes;  // its bytes on the host, and their values, reused by every step
    readonly double[] _logits;
    // Device sampling (StepSample on the GPU): the step's draws in (a part of the packed inputs), the drawn tokens out,
    // both float32 [B].
    readonly Tensor _tUniforms, _tDrawn;
    readonly byte[] _drawnBytes;
    readonly double[] _drawn;
    // On the GPU a step is one CUDA-graph launch: recorded per variant (no chunk completes / some chunk completes) on its
    // second run, after an eager warm-up; the graphs read the tensors above, whose addresses never change.
    readonly CudaGraph?[] _graphs = new CudaGraph?[2];
    readonly bool[] _warmedUp = new bool[2];
    // Block prefill: the block forward at batch 1 (one sequence) and at batch B (all at once), each with its memory feeds,
    // built on first use (see Prefill).
    readonly BlockRun?[] _blocks = new BlockRun?[2];

    sealed record BlockRun(LmGraph Graph, Executor Run, Dictionary<Value, Tensor> Feeds);

    public int Batch => B;
    public CausalLm Model => _model;

    /// <summary>Whether steps on the GPU replay CUDA graphs (the default) rather than launching each kernel from the host.</summary>
    public bool CapturesGraphs { get; }

    /// <summary>Steps that replayed a recorded CUDA graph.</summary>
    public long GraphReplays { get; private set; }

    /// <summary>Block forwards of prefills that replayed a recorded CUDA graph.</summary>
    public int PrefillReplays => _blocks.Sum(r => r?.Run.GraphReplays ?? 0);

    /// <summary>Sequence b's position: the number of tokens it has been fed since its <see cref="Reset"/>.</summary>
    public long Position(int b) => _pos[b];

    /// <param name="model">The model; the decoder reads its parameters in place (a replayed graph reads their addresses), so load new
    /// values into its tensors rather than replacing them.</param>
    /// <param name="batch">The sequences decoded together.</param>
    /// <param name="captureGraphs">On the GPU, replay each step, and the block forward of a prefill from its second run on, from a CUDA graph (one launch) instead of launching its kernels one by one.</param>
    public CausalLmDecoder(CausalLm model, int batch, bool captureGraphs = true)
    {
        ArgumentNullException.ThrowIfNull(model);
        LraConfig.Positive(batch, nameof(batch));
        var cfg = model.Config;
        if (cfg.Length % cfg.ChunkLength != 0)
            throw new ArgumentException($"the block length L = {cfg.Length} must be a multiple of the chunk length l = {cfg.ChunkLength} to decode incrementally", nameof(model));
        (_model, _be) = (model, model.Backend);
        (B, D, H, W, Lc, R, L, M, V) = (batch, cfg.Dim, cfg.Heads, cfg.Window, cfg.ChunkLength, cfg.Rank, cfg.Length, cfg.Memory, cfg.Vocab);
        (Hd, P, Mc, Lb) = (D / H, Math.Min(M, W - 1), M / Lc, L / Lc);
        C = Mc + Lb;
        _pos = new long[B];
        CapturesGraphs = captureGraphs && _be is CudaBackend;
        _host = new float[Packed * B];
        using var detached = TensorScope.Detach(); // the caches are the decoder's, whatever scope the caller is in
        var f = DType.Float32;
        _tPacked = _be.Empty(new Shape(Packed * B), f);
        Shape[] parts = [new(B), new(B, 4), new(B), new(B), new(B), new(B), new(B)];
        (_tParts, _partAt) = (new Tensor[parts.Length], new int[parts.Length]);
        for (int k = 0, at = 0; k < parts.Length; at += (int)parts[k].Count, k++)
        {
            _partAt[k] = at;
            _tParts[k] = _be is CudaBackend ? new Tensor(_be, parts[k], f, null, _tPacked.DevicePointer + 4ul * (ulong)at, owns: false) : _be.Empty(parts[k], f);
        }
        (_tTokens, _tState, _tRowsW, _tRowsChunk, _tRowsBlock, _tRowsRing, _tUniforms) = (_tParts[0], _tParts[1], _tParts[2], _tParts[3], _tParts[4], _tParts[5], _tParts[6]);
        _tLogits = _be.Empty(new Shape(B, 1, V), model.DType);
        (_logitBytes, _logits) = (new byte[_tLogits.Bytes], new double[B * V]);
        _tDrawn = _be.Empty(new Shape(B), f);
        (_drawnBytes, _drawn) = (new byte[_tDrawn.Bytes], new double[B]);
        _layers = new Layer[cfg.Layers];
        try
        {
            for (var i = 0; i < _layers.Length; i++) _layers[i] = new Layer(this, i);
            for (var b = 0; b < B; b++) Reset(b);
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Starts sequence b afresh (position 0, the block forward's zero memories).</summary>
    public void Reset(int b)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(b);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(b, B);
        foreach (var l in _layers) l.Reset(b);
        _pos[b] = 0;
    }

    /// <summary>
    /// Feeds one token to each active sequence (all when <paramref name="active"/> is empty) and returns the log-probabilities
    /// of the next token, [B·V] row-major (rows of inactive sequences are NaN). Inactive sequences keep their state.
    /// </summary>
    public float[] Step(ReadOnlySpan<int> tokens, ReadOnlySpan<bool> active = default)
    {
        Advance(tokens, active);
        _be.CopyToHost(_tLogits, _logitBytes); // waits for the step
        _tLogits.DType.Decode(_logitBytes, _logits);
        Advanced(active);
        return LogSoftmaxRows(_logits, active);
    }

    /// <summary>
    /// Feeds one token to each active sequence, as <see cref="Step"/>, and draws each active sequence's next token with
    /// <paramref name="options"/> (<see cref="SamplingOptions.Draw(ReadOnlySpan{float}, double)"/>'s rule) and its draw
    /// <paramref name="uniforms"/>[b] in [0, 1). On the GPU the draw runs on the device (<see cref="Ops.Sampling.SampleRows"/>):
    /// only the B tokens come back, not the logits. Returns the tokens, −1 for inactive sequences.
    /// </summary>
    public int[] StepSample(ReadOnlySpan<int> tokens, ReadOnlySpan<bool> active, SamplingOptions options, ReadOnlySpan<double> uniforms)
    {
        ArgumentNullException.ThrowIfNull(options);
        options.Validate();
        if (uniforms.Length != B) throw new ArgumentException($"{uniforms.Length} draws given; expected one per sequence ({B})", nameof(uniforms));
        for (var b = 0; b < B; b++)
            if ((active.IsEmpty || active[b]) && !(uniforms[b] >= 0 && uniforms[b] < 1))
                throw new ArgumentOutOfRangeException(nameof(uniforms), uniforms[b], $"sequence {b}: a draw must lie in [0, 1)");
        var result = new int[B];
        if (_be is not CudaBackend)
        {
            var lp = Step(tokens, active);
            for (var b = 0; b < B; b++) result[b] = active.IsEmpty || active[b] ? options.Draw(lp.AsSpan(b * V, V), uniforms[b]) : -1;
            return result;
        }
        // The draws go up with the step's other inputs, so the draw kernel queues right behind the step's graph.
        var draws = _host.AsSpan(_partAt[6], B);
        for (var b = 0; b < B; b++) draws[b] = active.IsEmpty || active[b] ? (float)uniforms[b] : -1f;
        Advance(tokens, active);
        using (var rows = _tLogits.Reshape(B, V))
            Ops.Sampling.SampleRows(_be, rows, _tUniforms, options.Temperature, options.TopK, options.TopP, _tDrawn);
        _be.CopyToHost(_tDrawn, _drawnBytes); // waits for the step and the draw
        DType.Float32.Decode(_drawnBytes, _drawn);
        Advanced(active);
        for (var b = 0; b < B; b++) result[b] = (int)_drawn[b];
        return result;
    }

    /// <summary>The device work of a step: checks, uploads the step's inputs, runs (no wait).</summary>
    void Advance(ReadOnlySpan<int> tokens, ReadOnlySpan<bool> active)
    {
        if (tokens.Length != B) throw new ArgumentException($"{tokens.Length} tokens given; expected one per sequence ({B})", nameof(tokens));
        if (!active.IsEmpty && active.Length != B) throw new ArgumentException($"{active.Length} flags given; expected one per sequence ({B})", nameof(active));
        var anyCompletes = false;
        Span<float> state = _host.AsSpan(B, 4 * B), rows = _host.AsSpan(5 * B);
        for (var b = 0; b < B; b++)
        {
            var on = active.IsEmpty || active[b];
            if (on && (tokens[b] < 0 || tokens[b] >= V))
                throw new ArgumentOutOfRangeException(nameof(tokens), tokens[b], $"sequence {b}: token ids must lie in [0, {V})");
            var t = _pos[b];
            var i = (int)(t % L);
            var (qi, chunkRow) = (i / Lc, i % Lc);
            var firstCache = FloorMod((t - i) / Lc - Mc, C);
            var completes = on && chunkRow == Lc - 1;
            _host[b] = on ? tokens[b] : 0;
            (state[4 * b], state[4 * b + 1], state[4 * b + 2], state[4 * b + 3]) = ((int)(t % W), Math.Min(W, P + i + 1), firstCache, qi);
            rows[b] = on ? (int)(t % W) : -1;
            rows[B + b] = on ? chunkRow : -1;
            rows[2 * B + b] = completes ? qi * R : -1;
            rows[3 * B + b] = completes ? FloorMod(t / Lc, C) * R : -1;
            anyCompletes |= completes;
        }
        if (_be is CudaBackend) _tPacked.CopyFrom(_host);
        else
            for (var k = 0; k < _tParts.Length; k++) _tParts[k].CopyFrom(_host.AsSpan(_partAt[k], (int)_tParts[k].Count));
        Run(anyCompletes);
    }

    void Advanced(ReadOnlySpan<bool> active)
    {
        for (var b = 0; b < B; b++)
            if (active.IsEmpty || active[b]) _pos[b]++;
    }

    /// <summary>The step's device work, from the uploaded inputs to the logits: eager, or a replay of its CUDA graph.</summary>
    void Run(bool anyCompletes)
    {
        var variant = anyCompletes ? 1 : 0;
        if (!CapturesGraphs || !_warmedUp[variant])
        {
            _warmedUp[variant] = true; // the first run of a variant is eager: kernels load and cuBLAS settles outside a recording
            Forward(anyCompletes);
            return;
        }
        var stream = ((CudaBackend)_be).Stream;
        var graph = _graphs[variant] ??= CudaGraph.Capture(stream, () => Forward(anyCompletes));
        graph.Launch(stream);
        GraphReplays++;
    }

    /// <summary>Embedding, the layers' steps and the output map into <see cref="_tLogits"/>; every temporary is freed by the end.</summary>
    void Forward(bool anyCompletes)
    {
        using var scope = new TensorScope();
        var p = _model.Parameters;
        var rows = New(B, D);
        Ops.Embedding.Forward(_be, p["in_emb.weight"], _tTokens, rows);
        var scaled = New(B, D);
        Elementwise.Axpby(_be, rows, MathF.Sqrt(D), null, 0f, scaled);
        var x = scaled.Reshape(B, 1, D); // a view: frees nothing
        foreach (var layer in _layers) x = layer.Step(x, anyCompletes);
        Ops.DecodeLinear.Forward(_be, x, null, [new(p["in_emb.weight"], p["out_emb.bias"], _tLogits)]);
    }

    /// <summary>Whether <see cref="Prefill"/> of a fresh sequence runs the block forward (M >= L > 0) rather than one step per token.</summary>
    public bool PrefillsInBlocks => M >= L; // L >= 1, so a memory is there

    /// <summary>
    /// Feeds sequence b its prompt (the other sequences wait); returns the log-probabilities after its last token [V].
    /// A fresh sequence (position 0) with <see cref="PrefillsInBlocks"/> takes its prompt through the block forward, blocks of
    /// L committed to the memories as in training, and its caches are filled from each layer's inputs, which the block
    /// forward's next memories hold (M >= L); otherwise the prompt goes in one <see cref="Step"/> per token.
    /// </summary>
    public float[] Prefill(int b, ReadOnlySpan<int> prompt)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(b);
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual(b, B);
        if (prompt.IsEmpty) throw new ArgumentException("the prompt is empty", nameof(prompt));
        CheckTokens(b, prompt, nameof(prompt));
        if (_pos[b] == 0 && PrefillsInBlocks) return PrefillBlocks(b, prompt, prompt.Length);
        var tokens = new int[B];
        var active = new bool[B];
        active[b] = true;
        float[] last = [];
        foreach (var t in prompt)
        {
            tokens[b] = t;
            last = Step(tokens, active);
        }
        return last.AsSpan(b * V, V).ToArray();
    }

    /// <summary>
    /// Feeds every sequence its prompt at once, all fresh (position 0) and of one length, through the block forward at batch B
    /// (one launch sequence for the batch, not one a sequence); returns the log-probabilities after each prompt's last token,
    /// [B·V] row-major. Otherwise (a sequence not fresh, prompts of different lengths, or no block prefill) one
    /// <see cref="Prefill"/> a sequence.
    /// </summary>
    public float[] PrefillAll(IReadOnlyList<int[]> prompts)
    {
        ArgumentNullException.ThrowIfNull(prompts);
        if (prompts.Count != B) throw new ArgumentException($"{prompts.Count} prompts given; expected one per sequence ({B})", nameof(prompts));
        for (var b = 0; b < B; b++)
        {
            if (prompts[b] is null || prompts[b].Length == 0) throw new ArgumentException($"prompt {b} is empty", nameof(prompts));
            CheckTokens(b, prompts[b], nameof(prompts));
        }
        var n = prompts[0].Length;
        if (B > 1 && PrefillsInBlocks && prompts.All(p => p.Length == n) && _pos.All(t => t == 0))
        {
            var flat = new int[B * n];
            for (var b = 0; b < B; b++) prompts[b].CopyTo(flat, b * n);
            return PrefillBlocks(-1, flat, n);
        }
        var result = new float[B * V];
        for (var b = 0; b < B; b++) Prefill(b, prompts[b]).CopyTo(result, b * V);
        return result;
    }

    /// <summary>Every token id of sequence b's prompt lies in [0, V), or the argument is named with the first that does not.</summary>
    void CheckTokens(int b, ReadOnlySpan<int> prompt, string argument)
    {
        foreach (var t in prompt)
            if (t < 0 || t >= V) throw new ArgumentOutOfRangeException(argument, t, $"sequence {b}: token ids must lie in [0, {V})");
    }

    /// <summary>
    /// The block forward over prompts [Bx, n] (row-major; Bx = 1 for sequence b, or B for all with b = −1), blocks of L
    /// committed to the memories, each layer's caches filled from its inputs; the log-probabilities after the last tokens.
    /// </summary>
    float[] PrefillBlocks(int b, ReadOnlySpan<int> prompts, int n)
    {
        var all = b < 0;
        var bx = all ? B : 1;
        var (g, run, feeds) = _blocks[all ? 1 : 0] ??= NewBlockRun(bx);
        foreach (var m in g.Memories) _be.Fill(feeds[m], 0f); // fresh sequences: the zero memories
        var tokens = new float[bx * L];
        var last = new double[bx * V];
        for (var start = 0; start < n; start += L)
        {
            var len = Math.Min(L, n - start);
            Array.Clear(tokens);
            for (var s = 0; s < bx; s++)
                for (var i = 0; i < len; i++) tokens[s * L + i] = prompts[s * n + start + i];
            feeds[g.Tokens].CopyFrom(tokens);
            run.Forward(feeds);
            using (var scope = new TensorScope())
                for (var i = 0; i < _layers.Length; i++)
                {
                    // Layer i's inputs at the block's positions: the last L rows of its next memory (M >= L), the first len real.
                    var x = New(bx, len, D);
                    Layout.CopySlice(_be, run[g.NextMemories[i]], M - L, x, 0, 1, len);
                    _layers[i].Fill(b, x, start, len);
                }
            if (start + len == n)
                using (var scope = new TensorScope())
                {
                    // Only each prompt's last row [bx, 1, V] comes to the host, not the block's [bx, L, V] logits.
                    var logits = run[g.Logits];
                    var rows = _be.Empty(new Shape(bx, 1, V), logits.DType);
                    Layout.CopySlice(_be, logits, len - 1, rows, 0, 1, 1);
                    rows.ToDoubles().CopyTo(last, 0);
                }
            else
                for (var i = 0; i < g.Memories.Length; i++) Elementwise.Cast(_be, run[g.NextMemories[i]], feeds[g.Memories[i]]);
            run.ReleaseOutputs();
        }
        if (all) Array.Fill(_pos, n);
        else _pos[b] = n;
        return LogSoftmaxRows(last, default);
    }

    BlockRun NewBlockRun(int batch)
    {
        using var detached = TensorScope.Detach(); // the graph and its feeds are the decoder's
        var graph = _model.BuildGraph(batch);
        // With graphs, the block forward runs from a CUDA graph from its second run on (the first warms up; a session serves
        // many prompts; the feeds are these tensors every time, as a replay needs).
        var run = new Executor(graph.Graph, new ExecutorOptions { Keep = [.. graph.NextMemories, graph.Logits], CaptureGraph = CapturesGraphs });
        var feeds = new Dictionary<Value, Tensor>();
        foreach (var v in graph.Memories.Append(graph.Tokens).Append(graph.Targets)) feeds[v] = _be.Empty(v.Shape, v.DType);
        _be.Fill(feeds[graph.Targets], -1f);
        return new BlockRun(graph, run, feeds);
    }

    /// <summary>Each active row's log-softmax in double (inactive rows NaN); rows in parallel for large batches (the same bits: each row is its own sum).</summary>
    float[] LogSoftmaxRows(double[] logits, ReadOnlySpan<bool> active)
    {
        var result = new float[logits.Length];
        var on = active.IsEmpty ? null : active.ToArray();
        var rowsIn = logits.Length / V;
        void Row(int b)
        {
            var row = logits.AsSpan(b * V, V);
            if (on is not null && !on[b]) { result.AsSpan(b * V, V).Fill(float.NaN); return; }
            double max = double.NegativeInfinity, sum = 0;
            foreach (var v in row) max = Math.Max(max, v);
            foreach (var v in row) sum += Math.Exp(v - max);
            var lse = max + Math.Log(sum);
            for (var c = 0; c < V; c++) result[b * V + c] = (float)(row[c] - lse);
        }
        if ((long)rowsIn * V >= ParallelLogSoftmaxElements) Parallel.For(0, rowsIn, Row);
        else for (var b = 0; b < rowsIn; b++) Row(b);
        return result;
    }

    /// <summary>Batches of at least this many logits take their rows in parallel (about 0.2 ms single-threaded at 64 x 256).</summary>
    const long ParallelLogSoftmaxElements = 4096;

    static int FloorMod(long a, int m) => (int)(((a % m) + m) % m);

    Tensor New(params int[] dims) => _be.Empty(new Shape(dims), _model.DType);

    public void Dispose()
    {
        if (_graphs.Any(g => g is not null)) _be.Synchronize(); // graphs are destroyed after their last replay has run
        foreach (var g in _graphs) g?.Dispose();
        foreach (var r in _blocks)
        {
            if (r is null) continue;
            r.Run.Dispose();
            foreach (var t in r.Feeds.Values) t.Dispose();
            r.Graph.Dispose();
        }
        foreach (var l in _layers) l?.Dispose();
        foreach (var t in _tParts ?? []) t?.Dispose();
        _tPacked?.Dispose();
        _tLogits?.Dispose();
        _tDrawn?.Dispose();
    }
}
