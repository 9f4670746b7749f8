using System.Globalization;
using System.Net;
using System.Text;

namespace TransformerLS.Bench.Scale;

/// <summary>A small SVG line chart with log-log axes (decade grid, 1-2-5 labels), enough to read a scaling study at a glance.</summary>
public static class SvgPlot
{
    /// <summary>A line; series of one <paramref name="Group"/> share a colour (−1: a colour of its own).</summary>
    public sealed record Series(string Name, IReadOnlyList<(double X, double Y)> Points, bool Dashed = false, int Group = -1);

    static readonly string[] Colors = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"];
    const int W = 760, H = 480, Left = 80, Right = 210, Top = 40, Bottom = 60;

    public static string LogLog(string title, string xLabel, string yLabel, IReadOnlyList<Series> series)
    {
        var pts = series.SelectMany(s => s.Points).Where(p => p.X > 0 && p.Y > 0 && double.IsFinite(p.Y)).ToList();
        var sb = new StringBuilder();
        static string N(double v) => v.ToString("0.##", CultureInfo.InvariantCulture);
        sb.AppendLine($"<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" viewBox=\"0 0 {W} {H}\" font-family=\"sans-serif\" font-size=\"12\">");
        sb.AppendLine($"<rect width=\"{W}\" height=\"{H}\" fill=\"white\"/>");
        sb.AppendLine($"<text x=\"{W / 2}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{WebUtility.HtmlEncode(title)}</text>");
        if (pts.Count == 0)
        {
            sb.AppendLine($"<text x=\"{W / 2}\" y=\"{H / 2}\" text-anchor=\"middle\">no data</text></svg>");
            return sb.ToString();
        }
        double x0 = Math.Floor(Math.Log10(pts.Min(p => p.X))), x1 = Math.Ceiling(Math.Log10(pts.Max(p => p.X)));
        double y0 = Math.Floor(Math.Log10(pts.Min(p => p.Y))), y1 = Math.Ceiling(Math.Log10(pts.Max(p => p.Y)));
        if (x1 <= x0) x1 = x0 + 1;
        if (y1 <= y0) y1 = y0 + 1;
        double Px(double x) => Left + (Math.Log10(x) - x0) / (x1 - x0) * (W - Left - Right);
        double Py(double y) => H - Bottom - (Math.Log10(y) - y0) / (y1 - y0) * (H - Top - Bottom);

        foreach (var (lo, hi, horizontal) in new[] { (x0, x1, false), (y0, y1, true) })
            for (var e = lo; e <= hi; e++)
                foreach (var m in new[] { 1, 2, 5 })
                {
                    var v = m * Math.Pow(10, e);
                    if (Math.Log10(v) > hi + 1e-9) break;
                    var major = m == 1;
                    var label = v >= 1e6 ? N(v / 1e6) + "M" : v >= 1e3 ? N(v / 1e3) + "K" : N(v);
                    if (horizontal)
                    {
                        var y = Py(v);
                        sb.AppendLine($"<line x1=\"{Left}\" x2=\"{W - Right}\" y1=\"{N(y)}\" y2=\"{N(y)}\" stroke=\"{(major ? "#bbb" : "#eee")}\"/>");
                        sb.AppendLine($"<text x=\"{Left - 6}\" y=\"{N(y + 4)}\" text-anchor=\"end\">{label}</text>");
                    }
                    else
                    {
                        var x = Px(v);
                        sb.AppendLine($"<line x1=\"{N(x)}\" x2=\"{N(x)}\" y1=\"{Top}\" y2=\"{H - Bottom}\" stroke=\"{(major ? "#bbb" : "#eee")}\"/>");
                        sb.AppendLine($"<text x=\"{N(x)}\" y=\"{H - Bottom + 16}\" text-anchor=\"middle\">{label}</text>");
                    }
                }
        sb.AppendLine($"<rect x=\"{Left}\" y=\"{Top}\" width=\"{W - Left - Right}\" height=\"{H - Top - Bottom}\" fill=\"none\" stroke=\"#333\"/>");
        sb.AppendLine($"<text x=\"{(Left + W - Right) / 2}\" y=\"{H - 18}\" text-anchor=\"middle\">{WebUtility.HtmlEncode(xLabel)}</text>");
        sb.AppendLine($"<text x=\"18\" y=\"{(Top + H - Bottom) / 2}\" text-anchor=\"middle\" transform=\"rotate(-90 18 {(Top + H - Bottom) / 2})\">{WebUtility.HtmlEncode(yLabel)}</text>");

        for (var i = 0; i < series.Count; i++)
        {
            var s = series[i];
            var color = Colors[(s.Group >= 0 ? s.Group : i) % Colors.Length];
            var line = s.Points.Where(p => p.X > 0 && p.Y > 0 && double.IsFinite(p.Y)).OrderBy(p => p.X).ToList();
            if (line.Count == 0) continue;
            var dash = s.Dashed ? " stroke-dasharray=\"6 4\"" : "";
            sb.AppendLine($"<polyline fill=\"none\" stroke=\"{color}\" stroke-width=\"2\"{dash} points=\"{string.Join(' ', line.Select(p => $"{N(Px(p.X))},{N(Py(p.Y))}"))}\"/>");
            foreach (var p in line) sb.AppendLine($"<circle cx=\"{N(Px(p.X))}\" cy=\"{N(Py(p.Y))}\" r=\"3\" fill=\"{color}\"/>");
            var ly = Top + 10 + 20 * i;
            sb.AppendLine($"<line x1=\"{W - Right + 12}\" x2=\"{W - Right + 36}\" y1=\"{ly}\" y2=\"{ly}\" stroke=\"{color}\" stroke-width=\"2\"{dash}/>");
            sb.AppendLine($"<text x=\"{W - Right + 42}\" y=\"{ly + 4}\">{WebUtility.HtmlEncode(s.Name)}</text>");
        }
        sb.AppendLine("</svg>");
        return sb.ToString();
    }
}
