using System.Runtime.InteropServices;
using System.Text;

namespace TransformerLS.Cuda;

/// <summary>The output of one NVRTC compilation.</summary>
public sealed record CompiledKernelImage(byte[] Image, bool IsCubin, string Arch, string Log, IReadOnlyDictionary<string, string> LoweredNames);

/// <summary>
/// NVRTC in ManagedCuda's shape: a source, in-memory headers, options and name expressions in; CUBIN for
/// the requested arch out, or PTX for the newest arch NVRTC knows when it does not know the requested one.
/// </summary>
public sealed unsafe class CudaRuntimeCompiler
{
    readonly string _source, _name;
    readonly List<(string Name, string Text)> _headers = [];
    readonly List<string> _nameExpressions = [];

    public CudaRuntimeCompiler(string source, string name)
    {
        _source = source; _name = name;
    }

    /// <summary>A header the source can #include by <paramref name="includeName"/>; never read from disk.</summary>
    public CudaRuntimeCompiler AddHeader(string includeName, string text) { _headers.Add((includeName, text)); return this; }

    /// <summary>A template instantiation or overloaded name to resolve to its lowered (mangled) name.</summary>
    public CudaRuntimeCompiler AddNameExpression(string expression) { _nameExpressions.Add(expression); return this; }

    public static (int Major, int Minor) Version
    {
        get
        {
            NativeLibraries.Load(NativeLib.Nvrtc);
            int major, minor;
            Nvrtc.Check(Nvrtc.nvrtcVersion(&major, &minor));
            return (major, minor);
        }
    }

    /// <summary>The sm_XY numbers this NVRTC can emit CUBIN for.</summary>
    public static int[] SupportedArchs()
    {
        NativeLibraries.Load(NativeLib.Nvrtc);
        int n;
        Nvrtc.Check(Nvrtc.nvrtcGetNumSupportedArchs(&n));
        var archs = new int[n];
        fixed (int* p = archs) Nvrtc.Check(Nvrtc.nvrtcGetSupportedArchs(p));
        return archs;
    }

    /// <summary>
    /// An NVRTC newer than the driver emits code the driver may refuse to load; say so plainly instead of
    /// failing later with CUDA_ERROR_UNSUPPORTED_PTX_VERSION.
    /// </summary>
    public static string? CheckAgainstDriver(int driverVersion)
    {
        var (major, minor) = Version;
        var nvrtc = major * 1000 + minor * 10;
        return nvrtc > driverVersion
            ? $"NVRTC {major}.{minor} is newer than the CUDA driver (supports CUDA {driverVersion / 1000}.{driverVersion % 1000 / 10}); " +
              "code it emits may not load. Update the driver or use an NVRTC no newer than the driver."
            : null;
    }

    /// <summary>Compiles for <paramref name="archNumber"/> (e.g. 90); throws <see cref="NvrtcCompileException"/> with the log.
    /// <paramref name="archSpecific"/>: the arch-specific target (sm_90a: wgmma, setmaxnreg), whose CUBIN loads only on that arch;
    /// it needs NVRTC 12 or later and an arch NVRTC builds CUBIN for.</summary>
    public CompiledKernelImage Compile(int archNumber, IEnumerable<string> options, bool archSpecific = false)
    {
        // NVRTC recurses deeply (a thread-pool thread's stack is too small) and concurrent compilations
        // crashed NVRTC 11.8 here: compile one at a time, on a thread of our own with room to spare.
        lock (CompileGate) return CompileOnOwnThread(archNumber, options.ToArray(), archSpecific);
    }

    static readonly Lock CompileGate = new();

    CompiledKernelImage CompileOnOwnThread(int archNumber, string[] opts, bool archSpecific)
    {
        CompiledKernelImage? result = null;
        Exception? error = null;
        var t = new Thread(() =>
        {
            try { result = CompileOnThisThread(archNumber, opts, archSpecific); }
            catch (Exception e) { error = e; }
        }, CompilerStackBytes) { Name = "nvrtc" };
        t.Start();
        t.Join();
        if (error is not null) System.Runtime.ExceptionServices.ExceptionDispatchInfo.Throw(error);
        return result!;
    }

    const int CompilerStackBytes = 256 << 20;

    CompiledKernelImage CompileOnThisThread(int archNumber, string[] options, bool archSpecific)
    {
        var supported = SupportedArchs();
        var cubin = supported.Contains(archNumber);
        if (archSpecific && (!cubin || Version.Major < 12))
            throw new ArgumentException($"the arch-specific target sm_{archNumber}a needs NVRTC 12 or later building CUBIN for sm_{archNumber}; this is NVRTC {Version.Major}.{Version.Minor} with archs {string.Join(", ", supported)}", nameof(archSpecific));
        var target = cubin ? archNumber : supported.Where(a => a <= archNumber).DefaultIfEmpty(supported.Max()).Max();
        var sm = archSpecific ? $"sm_{archNumber}a" : $"sm_{archNumber}";
        var arch = cubin ? $"--gpu-architecture={sm}" : $"--gpu-architecture=compute_{target}";
        string[] all = [arch, .. options];

        using var pins = new Utf8Strings();
        nint prog;
        var headers = stackalloc byte*[Math.Max(1, _headers.Count)];
        var includes = stackalloc byte*[Math.Max(1, _headers.Count)];
        for (var i = 0; i < _headers.Count; i++)
        {
            headers[i] = pins.Add(_headers[i].Text);
            includes[i] = pins.Add(_headers[i].Name);
        }
        Nvrtc.Check(Nvrtc.nvrtcCreateProgram(&prog, pins.Add(_source), pins.Add(_name), _headers.Count, headers, includes));
        try
        {
            foreach (var e in _nameExpressions) Nvrtc.Check(Nvrtc.nvrtcAddNameExpression(prog, pins.Add(e)));
            var opts = stackalloc byte*[all.Length];
            for (var i = 0; i < all.Length; i++) opts[i] = pins.Add(all[i]);
            var status = Nvrtc.nvrtcCompileProgram(prog, all.Length, opts);
            var log = ReadLog(prog);
            if (status == Nvrtc.CompilationError) throw new NvrtcCompileException(_name, string.Join(' ', all), log);
            Nvrtc.Check(status);

            var lowered = new Dictionary<string, string>();
            foreach (var e in _nameExpressions)
            {
                byte* l;
                Nvrtc.Check(Nvrtc.nvrtcGetLoweredName(prog, pins.Add(e), &l));
                lowered[e] = Marshal.PtrToStringUTF8((nint)l)!;
            }
            nuint size;
            byte[] image;
            if (cubin)
            {
                Nvrtc.Check(Nvrtc.nvrtcGetCUBINSize(prog, &size));
                image = new byte[size];
                fixed (byte* p = image) Nvrtc.Check(Nvrtc.nvrtcGetCUBIN(prog, p));
            }
            else
            {
                Nvrtc.Check(Nvrtc.nvrtcGetPTXSize(prog, &size));
                image = new byte[size];
                fixed (byte* p = image) Nvrtc.Check(Nvrtc.nvrtcGetPTX(prog, p));
            }
            return new CompiledKernelImage(image, cubin, cubin ? sm : $"compute_{target}", log, lowered);
        }
        finally
        {
            Nvrtc.nvrtcDestroyProgram(&prog);
        }
    }

    static string ReadLog(nint prog)
    {
        nuint size;
        Nvrtc.Check(Nvrtc.nvrtcGetProgramLogSize(prog, &size));
        if (size <= 1) return "";
        var buf = new byte[size];
        fixed (byte* p = buf) Nvrtc.Check(Nvrtc.nvrtcGetProgramLog(prog, p));
        return Encoding.UTF8.GetString(buf, 0, (int)size - 1);
    }

    /// <summary>NUL-terminated UTF-8 copies held for the duration of one compilation.</summary>
    sealed class Utf8Strings : IDisposable
    {
        readonly List<nint> _blocks = [];

        public byte* Add(string s)
        {
            var bytes = Encoding.UTF8.GetBytes(s);
            var p = (byte*)NativeMemory.Alloc((nuint)bytes.Length + 1);
            bytes.CopyTo(new Span<byte>(p, bytes.Length));
            p[bytes.Length] = 0;
            _blocks.Add((nint)p);
            return p;
        }

        public void Dispose()
        {
            foreach (var b in _blocks) NativeMemory.Free((void*)b);
        }
    }
}
