#include "backend/rdu/report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <sstream>

#include "support/error.h"

namespace tessera::rdu {
namespace {

std::string fmt(const char* spec, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, spec, v);
  return buf;
}

// 3 significant digits with an SI prefix: 1.23 k, 45.6 G.
std::string si(double v, const std::string& unit = "") {
  static const char* prefixes[] = {"", " k", " M", " G", " T", " P", " E"};
  int p = 0;
  double a = std::abs(v);
  while (a >= 999.5 && p < 6) a /= 1000, v /= 1000, ++p;
  std::string s = fmt("%.3g", v) + prefixes[p];
  if (!unit.empty()) s += (p ? "" : " ") + unit;
  return s;
}

// An integer with thousands separators.
std::string grouped(double v) {
  std::string digits = fmt("%.0f", std::abs(v)), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return (v < 0 ? "-" : "") + out;
}

// Keras prefixes every node name with its call path; the last two components identify it.
std::string short_name(const std::string& name) {
  size_t cut = name.rfind('/');
  if (cut != std::string::npos && cut > 0) cut = name.rfind('/', cut - 1);
  return cut == std::string::npos ? name : name.substr(cut + 1);
}

// Utilisation colour scale (blue -> teal -> green -> yellow -> red), readable on white.
std::string util_colour(double u) {
  static const double stops[][3] = {{44, 62, 143}, {42, 157, 143}, {140, 200, 75}, {244, 196, 48}, {228, 87, 46}};
  u = std::clamp(u, 0.0, 1.0) * 4;
  int i = std::min(3, static_cast<int>(u));
  double f = u - i;
  char buf[8];
  int rgb[3];
  for (int c = 0; c < 3; ++c) rgb[c] = static_cast<int>(std::lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])));
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buf;
}

// Distinct hues for telling kernels apart on the mesh (numbered from 1; they repeat).
constexpr int kKernelColours = 12;
std::string kernel_colour(int number) {
  static const char* palette[kKernelColours] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
                                                "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#e7ba52"};
  return palette[(std::max(number, 1) - 1) % kKernelColours];
}

double samples_per_s(const ReportInput& in, const SimReport& t) { return t.seconds > 0 ? in.batch / t.seconds : 0; }

const char* kStyle = R"(<style>
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;margin:24px;color:#1d2330;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #d8dce4;padding-bottom:4px}
.sub{color:#5a6275;font-size:13px;margin-bottom:14px}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #d8dce4;border-radius:6px;padding:8px 12px;min-width:140px;background:#f7f8fb}
.card b{display:block;font-size:18px;color:#16325c}.card span{font-size:12px;color:#5a6275}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #d8dce4;padding:3px 7px;text-align:right}
th{background:#eef1f6}td.l,th.l{text-align:left}
.meshes{display:flex;flex-wrap:wrap;gap:18px}.mesh{border:1px solid #d8dce4;border-radius:6px;padding:8px}
.mesh h3{font-size:13px;margin:0 0 6px}.key{font-size:11px;color:#39404f;margin-top:4px}.pair{display:flex;gap:12px}.note{font-size:12px;color:#5a6275}.bad{color:#b00020;font-weight:bold}
.ok{color:#1b7f3b;font-weight:bold}svg text{font-family:inherit}
</style>
)";

void header(std::ostream& o, const ReportInput& in, const RduMapping& mp, const SimReport& t) {
  const Arch& a = mp.arch;
  double clock = a.clock_ghz * 1e9;
  double peak = t.peak_flop_per_cycle * clock;
  o << "<h1>Tessera rdu simulation: " << html_escape(in.model) << "</h1>\n<div class=\"sub\">signature "
    << html_escape(in.signature) << " &middot; chip " << html_escape(a.name) << " (" << a.pcu.count << " PCUs, " << a.pmu.count
    << " PMUs, " << a.mesh.rows << "&times;" << a.mesh.cols << " mesh, " << fmt("%.3g", a.clock_ghz) << " GHz) &middot; batch "
    << in.batch << " &middot; " << (mp.precision.bf16 ? "bf16" : "fp32") << " timing &middot; "
    << (in.main_is_fused ? "fused" : "unfused (one op per section)") << " mapping &middot; validator "
    << (in.problems.empty() ? "<span class=\"ok\">ok</span>" : "<span class=\"bad\">FAILED</span>") << "</div>\n";
  auto card = [&](const std::string& value, const std::string& label) {
    o << "<div class=\"card\"><b>" << value << "</b><span>" << label << "</span></div>";
  };
  o << "<div class=\"cards\">";
  card(grouped(t.cycles), "total cycles");
  card(t.seconds >= 1e-3 ? fmt("%.4g ms", t.seconds * 1e3) : fmt("%.4g &micro;s", t.seconds * 1e6), "time per batch");
  card(si(samples_per_s(in, t)), "samples/s");
  card(fmt("%.4g", t.tflops()) + " / " + fmt("%.4g", peak / 1e12), "TFLOP/s achieved / peak");
  card(fmt("%.2f%%", 100 * t.fraction_of_peak()), "of peak");
  card(fmt("%.1f%%", 100 * t.pcu_utilisation), "PCU utilisation");
  card(si(static_cast<double>(t.hbm_bytes), "B"), "HBM traffic");
  card(si(static_cast<double>(t.ddr_bytes), "B"), "DDR traffic");
  card(std::to_string(t.sections.size()), "sections");
  auto secs = [](double s) { return s < 1 ? fmt("%.3g ms", s * 1e3) : fmt("%.3g s", s); };
  card(secs(mp.compile_seconds), "compile (mapping)");
  card(secs(mp.placement_seconds), "placement search");
  card(mp.placement_lower_bound > 0 ? fmt("%.3g&times;", mp.placement_cost / mp.placement_lower_bound) : "&ndash;",
       "placement cost / lower bound");
  o << "</div>\n";
  if (!in.problems.empty()) {
    o << "<p class=\"bad\">Validator findings:</p><ul>";
    for (const auto& p : in.problems) o << "<li>" << html_escape(p) << "</li>";
    o << "</ul>\n";
  }
}

// ---- mesh heatmaps ----

// Pixels per mesh cell: a mesh is at most about 560 px wide or tall, so a big mesh's two
// drawings fit side by side on a 1200 px page.
int mesh_cell_px(const Arch& a) { return std::clamp(560 / std::max({a.mesh.rows, a.mesh.cols, 1}), 8, 44); }
// Big cells carry labels; small ones get a second drawing coloured by kernel instead.
bool mesh_labelled(const Arch& a) { return mesh_cell_px(a) >= 30; }

// A cell label: Tessera's fused ops read better without their prefix (TsFusedConv2D -> Conv2D).
std::string op_label(std::string op) {
  for (const char* prefix : {"Ts", "Fused"})
    if (op.rfind(prefix, 0) == 0 && op.size() > std::strlen(prefix)) op = op.substr(std::strlen(prefix));
  return op.substr(0, 6);
}

void mesh_svg(std::ostream& o, const RduMapping& mp, size_t s, const SectionTiming& st) {
  const Arch& a = mp.arch;
  const int rows = a.mesh.rows, cols = a.mesh.cols;
  const int px = mesh_cell_px(a);
  const Section& sec = mp.partition.sections[s];
  const SectionMapping& sm = mp.sections[s];
  SlotUtilisation util = slot_utilisation(mp, s, st);
  // Which slot (kernel) holds each cell; cells beyond pcu.count / pmu.count do not exist.
  std::vector<int> owner(static_cast<size_t>(rows) * cols, -1);
  for (size_t j = 0; j < sec.kernels.size() && j < sm.pcu_units.size(); ++j) {
    for (int u : sm.pcu_units[j]) owner[sm.unit_cell[u]] = static_cast<int>(j);
    for (int u : sm.pmu_units[j]) owner[sm.unit_cell[u]] = static_cast<int>(j);
  }
  // Kernels holding units are numbered 1.. in the section; big cells show the number and a
  // key under the mesh names them.
  std::vector<int> number(sec.kernels.size(), 0);
  int numbered = 0;
  for (size_t j = 0; j < sec.kernels.size() && j < sm.pcu_units.size(); ++j)
    if (!sm.pcu_units[j].empty() || !sm.pmu_units[j].empty()) number[j] = ++numbered;
  const bool labels = mesh_labelled(a);
  // One drawing of the mesh: coloured by utilisation (titles and, on big cells, labels), or
  // by kernel (a categorical palette that repeats) so that small cells still show which op
  // sits where.
  auto draw = [&](bool by_kernel) {
    int n_pcu = 0, n_pmu = 0;
    o << "<svg width=\"" << cols * px << "\" height=\"" << rows * px << "\" viewBox=\"0 0 " << cols * px << ' ' << rows * px
      << "\" role=\"img\"" << (by_kernel ? " class=\"kernel-map\"" : "") << ">";
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        bool pcu = a.is_pcu_cell(r, c);
        if (pcu ? n_pcu++ >= a.pcu.count : n_pmu++ >= a.pmu.count) continue;  // no unit on this cell
        int j = owner[static_cast<size_t>(r) * cols + c];
        double x = c * px, y = r * px, h = px / 2.0;
        std::string fill = "#e3e6ec", title;
        double u = 0;
        if (j >= 0) {
          const Kernel& k = mp.kernels[sec.kernels[j]];
          u = pcu ? util.pcu[j] : util.pmu[j];
          fill = by_kernel ? kernel_colour(number[j]) : util_colour(u);
          title = std::string(pcu ? "PCU" : "PMU") + " (" + std::to_string(r) + "," + std::to_string(c) + ") #" +
                  std::to_string(number[j]) + " " + short_name(k.name) + " [" + k.op + "] " + fmt("%.0f%%", 100 * u) +
                  (pcu ? " computing" : " port busy");
        }
        if (pcu)
          o << "<rect x=\"" << x + 1 << "\" y=\"" << y + 1 << "\" width=\"" << px - 2 << "\" height=\"" << px - 2
            << "\" rx=\"1\" fill=\"" << fill << "\">";
        else
          o << "<circle cx=\"" << x + h << "\" cy=\"" << y + h << "\" r=\"" << h - 1.5 << "\" fill=\"" << fill << "\">";
        if (!title.empty()) o << "<title>" << html_escape(title) << "</title>";
        o << (pcu ? "</rect>" : "</circle>");
        if (j >= 0 && labels) {
          const Kernel& k = mp.kernels[sec.kernels[j]];
          o << "<text x=\"" << x + h << "\" y=\"" << y + h - 1 << "\" font-size=\"" << px * 0.22
            << "\" text-anchor=\"middle\" fill=\"" << (u > 0.3 && u < 0.85 ? "#111" : "#fff") << "\" pointer-events=\"none\">"
            << html_escape(op_label(k.op)) << "<tspan x=\"" << x + h << "\" dy=\"" << px / 4 + 1 << "\">#" << number[j]
            << "</tspan></text>";
        }
      }
    o << "</svg>";
  };
  if (labels) {
    draw(false);
  } else {
    o << "<div class=\"pair\"><div><div class=\"note\">utilisation</div>";
    draw(false);
    o << "</div><div><div class=\"note\">which kernel sits where (colours repeat every " << kKernelColours << ")</div>";
    draw(true);
    o << "</div></div>";
  }
  const int key_cap = 24;
  o << "<div class=\"key\">";
  for (size_t j = 0; j < number.size(); ++j) {
    if (!number[j] || number[j] > key_cap) continue;
    const Kernel& k = mp.kernels[sec.kernels[j]];
    o << (number[j] > 1 ? " &middot; " : "");
    if (!labels) o << "<span style=\"color:" << kernel_colour(number[j]) << "\">&#9632;</span>";
    o << "#" << number[j] << " " << html_escape(short_name(k.name));
  }
  if (numbered > key_cap) o << " &middot; &hellip; " << numbered - key_cap << " more";
  o << "</div>";
}

void mesh_legend(std::ostream& o) {
  o << "<svg width=\"520\" height=\"34\" role=\"img\"><defs><linearGradient id=\"ug\">";
  for (int i = 0; i <= 4; ++i) o << "<stop offset=\"" << i * 25 << "%\" stop-color=\"" << util_colour(i / 4.0) << "\"/>";
  o << "</linearGradient></defs><rect x=\"0\" y=\"4\" width=\"200\" height=\"12\" fill=\"url(#ug)\"/>"
       "<text x=\"0\" y=\"30\" font-size=\"11\">0%</text><text x=\"200\" y=\"30\" font-size=\"11\" text-anchor=\"end\">100% busy</text>"
       "<rect x=\"230\" y=\"2\" width=\"14\" height=\"14\" fill=\"#8cc84b\"/><text x=\"250\" y=\"14\" font-size=\"11\">PCU</text>"
       "<circle cx=\"297\" cy=\"9\" r=\"7\" fill=\"#8cc84b\"/><text x=\"308\" y=\"14\" font-size=\"11\">PMU</text>"
       "<rect x=\"350\" y=\"2\" width=\"14\" height=\"14\" fill=\"#e3e6ec\"/><text x=\"370\" y=\"14\" font-size=\"11\">unused</text>"
       "</svg>\n";
}

void meshes(std::ostream& o, const ReportInput& in, const RduMapping& mp, const SimReport& t) {
  const size_t n = t.sections.size();
  const int cells = std::max(1, mp.arch.mesh.rows * mp.arch.mesh.cols);
  size_t cap = static_cast<size_t>(std::max(1, std::min(in.max_meshes, in.max_mesh_cells / cells)));
  std::vector<size_t> shown(n);
  for (size_t i = 0; i < n; ++i) shown[i] = i;
  if (n > cap) {
    std::stable_sort(shown.begin(), shown.end(), [&](size_t a, size_t b) { return t.sections[a].cycles > t.sections[b].cycles; });
    shown.resize(cap);
    std::sort(shown.begin(), shown.end());
  }
  o << "<h2>The mesh, per section</h2>\n<p class=\"note\">Each cell is a unit of the " << mp.arch.mesh.rows << "&times;"
    << mp.arch.mesh.cols << " checkerboard: squares are PCUs, circles PMUs. A used unit is coloured by its kernel's "
    << "utilisation over the section's pipeline time (PCUs: computing; PMUs: ports busy); hover a cell for its op.";
  if (n > cap) o << " Showing the " << cap << " slowest of " << n << " sections.";
  o << "</p>\n";
  mesh_legend(o);
  o << "<div class=\"meshes\">\n";
  for (size_t s : shown) {
    const SectionTiming& st = t.sections[s];
    // The box is as wide as its mesh, so small meshes sit side by side.
    int width = mp.arch.mesh.cols * mesh_cell_px(mp.arch) * (mesh_labelled(mp.arch) ? 1 : 2) + 12;
    o << "<div class=\"mesh\" data-section=\"" << s << "\" style=\"max-width:" << width << "px\"><h3>Section " << s
      << " &middot; " << st.kernel_names.size() << " kernels &middot; " << grouped(st.cycles) << " cycles &middot; bottleneck " << html_escape(short_name(st.bottleneck))
      << "</h3>";
    mesh_svg(o, mp, s, st);
    o << "</div>\n";
  }
  o << "</div>\n";
}

// ---- roofline ----

struct Axis {
  double lo, hi, px0, px1;  // log10 range mapped onto pixels
  double at(double v) const { return px0 + (std::log10(v) - lo) / (hi - lo) * (px1 - px0); }
};

void roofline(std::ostream& o, const ReportInput& in) {
  const ReportRun& main = in.main_is_fused ? in.fused : in.unfused;
  const ReportRun& other = in.main_is_fused ? in.unfused : in.fused;
  const Arch& a = main.mapping->arch;
  const double clock = a.clock_ghz * 1e9;
  const double peak = main.timing->peak_flop_per_cycle * clock;
  const double hbm = a.hbm.effective_Bpc() * clock, ddr = a.ddr.effective_Bpc() * clock;
  struct Pt {
    double ai, perf;
    size_t section;
    bool main;
    std::string bottleneck;
  };
  std::vector<Pt> pts;
  int skipped = 0;
  for (const ReportRun* run : {&main, &other}) {
    if (!run->present()) continue;
    const auto& secs = run->timing->sections;
    for (size_t s = 0; s < secs.size(); ++s) {
      double bytes = static_cast<double>(secs[s].hbm_bytes + secs[s].ddr_bytes);
      if (secs[s].flops <= 0 || secs[s].cycles <= 0 || bytes <= 0) {
        skipped += secs[s].cycles > 0;
        continue;
      }
      pts.push_back({secs[s].flops / bytes, secs[s].flops / (secs[s].cycles / clock), s, run == &main, secs[s].bottleneck});
    }
  }
  double ai_lo = peak / hbm, ai_hi = peak / hbm, perf_lo = peak;
  for (const Pt& p : pts) ai_lo = std::min(ai_lo, p.ai), ai_hi = std::max(ai_hi, p.ai), perf_lo = std::min(perf_lo, p.perf);
  const double W = 640, H = 400, L = 70, R = 20, T = 20, B = 50;
  Axis x{std::floor(std::log10(ai_lo / 2)), std::ceil(std::log10(ai_hi * 2)), L, W - R};
  Axis y{std::floor(std::log10(perf_lo / 2)), std::ceil(std::log10(peak * 2)), H - B, T};
  y.lo = std::max(y.lo, y.hi - 9);
  auto ys = [&](double v) { return y.at(std::max(v, std::pow(10.0, y.lo))); };
  o << "<h2>Roofline</h2>\n<p class=\"note\">Each section as a point: FLOPs per off-chip byte (HBM + DDR) against "
       "achieved FLOP/s over its whole time (switch and sync included). Roofs: the chip's peak and the effective HBM "
       "and DDR bandwidths. Filled: the "
    << (in.main_is_fused ? "fused" : "unfused") << " mapping; hollow: the " << (in.main_is_fused ? "unfused" : "fused")
    << " baseline.";
  if (skipped) o << " Not drawn (no FLOPs or no off-chip bytes): " << skipped << (skipped == 1 ? " section." : " sections.");
  o << "</p>\n<svg width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 " << W << ' ' << H << "\" role=\"img\" id=\"roofline\">"
    << "<rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R << "\" height=\"" << H - T - B
    << "\" fill=\"#fbfcfe\" stroke=\"#b8bfcc\"/>";
  for (double e = x.lo; e <= x.hi + 1e-9; ++e)
    o << "<line x1=\"" << x.at(std::pow(10, e)) << "\" y1=\"" << T << "\" x2=\"" << x.at(std::pow(10, e)) << "\" y2=\"" << H - B
      << "\" stroke=\"#e3e6ec\"/><text x=\"" << x.at(std::pow(10, e)) << "\" y=\"" << H - B + 16
      << "\" font-size=\"11\" text-anchor=\"middle\">" << si(std::pow(10, e)) << "</text>";
  for (double e = y.lo; e <= y.hi + 1e-9; ++e)
    o << "<line x1=\"" << L << "\" y1=\"" << y.at(std::pow(10, e)) << "\" x2=\"" << W - R << "\" y2=\"" << y.at(std::pow(10, e))
      << "\" stroke=\"#e3e6ec\"/><text x=\"" << L - 6 << "\" y=\"" << y.at(std::pow(10, e)) + 4
      << "\" font-size=\"11\" text-anchor=\"end\">" << si(std::pow(10, e)) << "</text>";
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" font-size=\"12\" text-anchor=\"middle\">"
    << "arithmetic intensity (FLOP per off-chip byte)</text><text transform=\"translate(16," << (T + H - B) / 2
    << ") rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">achieved FLOP/s</text>";
  // A bandwidth roof: the slope from the bottom edge up to its ridge, then the peak.
  auto roof = [&](double bw, const char* colour, const char* dash, const std::string& label) {
    double x_lo = std::pow(10, x.lo), x_hi = std::pow(10, x.hi);
    double x0 = std::max(x_lo, std::pow(10, y.lo) / bw), ridge = std::min(peak / bw, x_hi);
    if (x0 >= ridge) return;
    o << "<polyline fill=\"none\" stroke=\"" << colour << "\" stroke-width=\"2\" stroke-dasharray=\"" << dash << "\" points=\""
      << x.at(x0) << ',' << ys(x0 * bw) << ' ' << x.at(ridge) << ',' << ys(ridge * bw) << "\"/>";
    // Label the left roof on its left and the right one on its right so they never overlap.
    double lx = std::sqrt(x0 * ridge);
    bool left = bw >= hbm;
    o << "<text x=\"" << x.at(lx) + (left ? -6 : 6) << "\" y=\"" << ys(lx * bw) + (left ? -2 : 12) << "\" font-size=\"11\" fill=\""
      << colour << "\" text-anchor=\"" << (left ? "end" : "start") << "\">" << label << "</text>";
  };
  o << "<line x1=\"" << x.at(std::min(peak / hbm, std::pow(10, x.hi))) << "\" y1=\"" << y.at(peak) << "\" x2=\"" << W - R
    << "\" y2=\"" << y.at(peak) << "\" stroke=\"#16325c\" stroke-width=\"2\"/><text x=\"" << W - R - 4 << "\" y=\""
    << y.at(peak) - 6 << "\" font-size=\"11\" text-anchor=\"end\" fill=\"#16325c\">peak " << si(peak, "FLOP/s") << "</text>";
  roof(hbm, "#d1495b", "none", "HBM " + si(hbm, "B/s"));
  roof(ddr, "#edae49", "6 4", "DDR " + si(ddr, "B/s"));
  // Draw the baseline first so the main mapping's points sit on top.
  for (int pass = 0; pass < 2; ++pass)
    for (const Pt& p : pts) {
      if (p.main != (pass == 1)) continue;
      o << "<circle class=\"" << (p.main ? "pt-main" : "pt-base") << "\" cx=\"" << x.at(p.ai) << "\" cy=\"" << ys(p.perf)
        << "\" r=\"" << (p.main ? 5 : 4) << "\" fill=\"" << (p.main ? "#00798c" : "none") << "\" stroke=\""
        << (p.main ? "#fff" : "#7b8294") << "\" stroke-width=\"1.5\"><title>"
        << html_escape((p.main == in.main_is_fused ? "fused" : "unfused") + std::string(" section ") + std::to_string(p.section) +
                       ": " + si(p.ai) + " FLOP/B, " + si(p.perf, "FLOP/s") + ", bottleneck " + short_name(p.bottleneck))
        << "</title></circle>";
    }
  o << "</svg>\n";
}

// ---- tables ----

void section_table(std::ostream& o, const RduMapping& mp, const SimReport& t) {
  const size_t cap = 400;
  o << "<h2>Sections</h2>\n<table><tr><th>#</th><th class=\"l\">kernels</th><th>PCUs</th><th>PMUs</th><th>cycles</th>"
       "<th>of total</th><th>FLOPs</th><th>HBM bytes</th><th>DDR bytes</th><th>FLOP/B</th><th>link max</th>"
       "<th class=\"l\">bottleneck</th></tr>\n";
  for (size_t s = 0; s < t.sections.size() && s < cap; ++s) {
    const SectionTiming& st = t.sections[s];
    std::string ks;
    for (size_t k = 0; k < st.kernel_names.size() && k < 3; ++k) ks += (k ? ", " : "") + short_name(st.kernel_names[k]);
    double bytes = static_cast<double>(st.hbm_bytes + st.ddr_bytes);
    o << "<tr><td>" << s << "</td><td class=\"l\">" << st.kernel_names.size() << ": " << html_escape(ks)
      << (st.kernel_names.size() > 3 ? ", &hellip;" : "") << "</td><td>" << st.pcus << "</td><td>" << st.pmus << "</td><td>"
      << grouped(st.cycles) << "</td><td>" << fmt("%.1f%%", t.cycles > 0 ? 100 * st.cycles / t.cycles : 0) << "</td><td>"
      << si(st.flops) << "</td><td>" << si(static_cast<double>(st.hbm_bytes)) << "</td><td>"
      << si(static_cast<double>(st.ddr_bytes)) << "</td><td>" << (bytes > 0 ? si(st.flops / bytes) : "&ndash;") << "</td><td>"
      << fmt("%.0f%%", 100 * st.max_link_util) << "</td><td class=\"l\">" << html_escape(short_name(st.bottleneck))
      << "</td></tr>\n";
  }
  o << "</table>\n";
  if (t.sections.size() > cap) o << "<p class=\"note\">" << t.sections.size() - cap << " more sections not listed.</p>\n";
}

void fused_vs_unfused(std::ostream& o, const ReportInput& in) {
  o << "<h2>Fused against unfused</h2>\n";
  if (!in.fused.present() || !in.unfused.present()) {
    o << "<p class=\"note\">Only one mapping was simulated.</p>\n";
    return;
  }
  const SimReport &f = *in.fused.timing, &u = *in.unfused.timing;
  double best = std::max(samples_per_s(in, f), samples_per_s(in, u));
  o << "<table id=\"fused-vs-unfused\"><tr><th class=\"l\">mapping</th><th>sections</th><th>cycles</th><th>samples/s</th>"
       "<th>% of peak</th><th>HBM bytes</th><th class=\"l\">samples/s</th></tr>\n";
  for (int i = 0; i < 2; ++i) {
    const SimReport& t = i == 0 ? f : u;
    double sps = samples_per_s(in, t);
    o << "<tr><td class=\"l\">" << (i == 0 ? "fused" : "unfused (one op per section)") << "</td><td>" << t.sections.size()
      << "</td><td>" << grouped(t.cycles) << "</td><td>" << si(sps) << "</td><td>" << fmt("%.2f%%", 100 * t.fraction_of_peak())
      << "</td><td>" << si(static_cast<double>(t.hbm_bytes)) << "</td><td class=\"l\"><svg width=\"220\" height=\"12\">"
      << "<rect width=\"" << (best > 0 ? 220 * sps / best : 0) << "\" height=\"12\" fill=\""
      << (i == 0 ? "#00798c" : "#9aa1b1") << "\"/></svg></td></tr>\n";
  }
  o << "</table>\n<p>Fusion speed-up: <b id=\"speedup\">" << fmt("%.3g", f.cycles > 0 ? u.cycles / f.cycles : 0)
    << "&times;</b> (" << grouped(u.cycles) << " &rarr; " << grouped(f.cycles) << " cycles).</p>\n";
}

void sweep_plot(std::ostream& o, const ReportInput& in) {
  if (in.sweep.empty()) return;
  const double W = 640, H = 320, L = 80, R = 20, T = 20, B = 50;
  double vlo = in.sweep.front().value, vhi = vlo, smax = 0;
  for (const auto& p : in.sweep) vlo = std::min(vlo, p.value), vhi = std::max(vhi, p.value), smax = std::max(smax, p.samples_per_s);
  // Values spanning a decade or more (unit counts, bandwidths) read better on a log axis.
  bool logx = vlo > 0 && vhi / vlo >= 10;
  auto xs = [&](double v) {
    if (vhi == vlo) return (L + W - R) / 2;
    double f = logx ? std::log(v / vlo) / std::log(vhi / vlo) : (v - vlo) / (vhi - vlo);
    return L + 10 + f * (W - R - L - 20);
  };
  double step = std::pow(10, std::floor(std::log10(std::max(smax, 1e-12) / 4)));
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (smax / (step * m) <= 5) {
      step *= m;
      break;
    }
  double ymax = std::max(step, std::ceil(smax / step) * step);
  auto ys = [&](double v) { return H - B - v / ymax * (H - T - B); };
  o << "<h2>Sweep of " << html_escape(in.sweep_param) << "</h2>\n<svg width=\"" << W << "\" height=\"" << H << "\" viewBox=\"0 0 "
    << W << ' ' << H << "\" role=\"img\" id=\"sweep\"><rect x=\"" << L << "\" y=\"" << T << "\" width=\"" << W - L - R
    << "\" height=\"" << H - T - B << "\" fill=\"#fbfcfe\" stroke=\"#b8bfcc\"/>";
  for (double v = 0; v <= ymax + step / 2; v += step)
    o << "<line x1=\"" << L << "\" y1=\"" << ys(v) << "\" x2=\"" << W - R << "\" y2=\"" << ys(v)
      << "\" stroke=\"#e3e6ec\"/><text x=\"" << L - 6 << "\" y=\"" << ys(v) + 4 << "\" font-size=\"11\" text-anchor=\"end\">"
      << si(v) << "</text>";
  o << "<polyline fill=\"none\" stroke=\"#00798c\" stroke-width=\"2\" points=\"";
  for (const auto& p : in.sweep) o << xs(p.value) << ',' << ys(p.samples_per_s) << ' ';
  o << "\"/>";
  for (const auto& p : in.sweep)
    o << "<circle class=\"sweep-pt\" cx=\"" << xs(p.value) << "\" cy=\"" << ys(p.samples_per_s) << "\" r=\"4\" fill=\""
      << (p.valid ? "#00798c" : "#b00020") << "\"><title>" << html_escape(in.sweep_param) << " = " << fmt("%g", p.value) << ": "
      << si(p.samples_per_s) << " samples/s, " << fmt("%.2f%%", 100 * p.fraction_of_peak) << " of peak, " << p.sections
      << " sections" << (p.valid ? "" : ", INVALID") << "</title></circle><text x=\"" << xs(p.value) << "\" y=\"" << H - B + 16
      << "\" font-size=\"11\" text-anchor=\"middle\">" << fmt("%g", p.value) << "</text>";
  o << "<text x=\"" << (L + W - R) / 2 << "\" y=\"" << H - 12 << "\" font-size=\"12\" text-anchor=\"middle\">"
    << html_escape(in.sweep_param) << (logx ? " (log scale)" : "") << "</text><text transform=\"translate(16,"
    << (T + H - B) / 2 << ") rotate(-90)\" font-size=\"12\" text-anchor=\"middle\">samples/s</text></svg>\n";
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

SlotUtilisation slot_utilisation(const RduMapping& mp, size_t s, const SectionTiming& st) {
  const Section& sec = mp.partition.sections.at(s);
  const Arch& a = mp.arch;
  SlotUtilisation u;
  u.pcu.assign(sec.kernels.size(), 0);
  u.pmu.assign(sec.kernels.size(), 0);
  if (st.pipeline_cycles <= 0) return u;
  for (size_t j = 0; j < sec.kernels.size(); ++j) {
    const Kernel& k = mp.kernels[sec.kernels[j]];
    if (k.costs_nothing()) continue;
    double compute = kernel_cycles(k, sec.pcus[j], sec.pmus[j], a, mp.precision);
    if (k.engine == Engine::kPmu) {
      u.pmu[j] = compute / st.pipeline_cycles;
    } else {
      u.pcu[j] = compute / st.pipeline_cycles;
      if (sec.pmus[j] > 0) u.pmu[j] = static_cast<double>(k.out_bytes) / (a.pmu.write_Bpc * sec.pmus[j]) / st.pipeline_cycles;
    }
    u.pcu[j] = std::clamp(u.pcu[j], 0.0, 1.0);
    u.pmu[j] = std::clamp(u.pmu[j], 0.0, 1.0);
  }
  return u;
}

std::string render_report(const ReportInput& in) {
  const ReportRun& main = in.main_is_fused ? in.fused : in.unfused;
  TS_CHECK(main.present(), "rdu report: no ", in.main_is_fused ? "fused" : "unfused", " mapping to report");
  const RduMapping& mp = *main.mapping;
  const SimReport& t = *main.timing;
  TS_CHECK(t.sections.size() == mp.partition.sections.size() && mp.sections.size() == mp.partition.sections.size(),
           "rdu report: timing and mapping disagree on the number of sections");
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>rdu report: " << html_escape(in.model)
    << "</title>\n" << kStyle << "</head><body>\n";
  header(o, in, mp, t);
  fused_vs_unfused(o, in);
  meshes(o, in, mp, t);
  roofline(o, in);
  sweep_plot(o, in);
  section_table(o, mp, t);
  o << "<p class=\"note\">Simulated by Tessera's rdu consistency model (docs/rdu.md): numbers follow from the chip "
       "description and the cost model, not from hardware.</p>\n</body></html>\n";
  return o.str();
}

}  // namespace tessera::rdu
