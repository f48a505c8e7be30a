#include "analysis/report_svg.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace metamath::analysis::svg {

namespace {

constexpr double kWidth = 680, kHeight = 340;
constexpr double kLeft = 72, kRight = 20, kTop = 14, kBottom = 92;

std::string num(double v) { return fmt::format("{:.10g}", v); }
std::string px(double v) { return fmt::format("{:.2f}", v); }

std::string value_text(double v, const Axis& a) {
  if (a.percent) return fmt::format("{:.1f}%", 100 * v);
  if (std::fabs(v) >= 1e5 || (v != 0 && std::fabs(v) < 1e-3)) return fmt::format("{:.3g}", v);
  return fmt::format("{:.4g}", v);
}

std::string tick_text(double v, const Axis& a) {
  if (a.percent) return fmt::format("{:.4g}%", 100 * v);
  if (std::fabs(v) >= 1e6) return fmt::format("{:.3g}M", v / 1e6);
  if (std::fabs(v) >= 1e4) return fmt::format("{:.4g}k", v / 1e3);
  return fmt::format("{:.4g}", v);
}

std::string short_label(const std::string& s, std::size_t max = 22) {
  if (s.size() <= max) return s;
  std::size_t cut = max - 1;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;  // UTF-8 start
  return s.substr(0, cut) + "…";
}

// A linear or log mapping of [lo, hi] onto [a, b] pixels.
struct Scale {
  double lo = 0, hi = 1, a = 0, b = 1;
  bool log = false;
  double operator()(double v) const {
    double t = log ? (std::log10(v) - std::log10(lo)) / (std::log10(hi) - std::log10(lo))
                   : (v - lo) / (hi - lo);
    return a + std::clamp(t, 0.0, 1.0) * (b - a);
  }
};

// The data range of an axis, widened to nice ticks; `zero`: include 0 (bars).
std::pair<double, double> axis_range(std::vector<double> values, const Axis& ax, bool zero) {
  values.erase(std::remove_if(values.begin(), values.end(),
                              [&](double v) { return !std::isfinite(v) || (ax.log && v <= 0); }),
               values.end());
  double lo = values.empty() ? (ax.log ? 1 : 0) : *std::min_element(values.begin(), values.end());
  double hi = values.empty() ? (ax.log ? 10 : 1) : *std::max_element(values.begin(), values.end());
  if (zero && !ax.log) lo = std::min(lo, 0.0);
  if (ax.min) lo = *ax.min;
  if (ax.max) hi = *ax.max;
  if (ax.log) {
    lo = std::pow(10, std::floor(std::log10(lo)));
    hi = std::pow(10, std::ceil(std::log10(hi)));
    if (hi <= lo) hi = lo * 10;
    return {lo, hi};
  }
  if (hi <= lo) {
    const double pad = ax.percent ? 0.05 : std::max(1.0, std::fabs(lo) * 0.1);
    hi = lo + pad;
    if (!zero) lo -= pad;
  }
  std::vector<double> t = nice_ticks(lo, hi);
  return {std::min(lo, t.front()), std::max(hi, t.back())};
}

std::string open_svg(const std::string& cls_id, const std::string& title, double h,
                     std::size_t marks, std::size_t intervals, const std::string& kind) {
  return fmt::format(
      "<svg class=\"chart\" data-chart=\"{}\" data-kind=\"{}\" data-marks=\"{}\" "
      "data-intervals=\"{}\" viewBox=\"0 0 {} {}\" width=\"{}\" height=\"{}\" role=\"img\" "
      "aria-label=\"{}\" xmlns=\"http://www.w3.org/2000/svg\">\n",
      escape(cls_id), kind, marks, intervals, num(kWidth), num(h), num(kWidth), num(h),
      escape(title));
}

std::string plot_area(double x0, double y0, double x1, double y1) {
  return fmt::format(
      "<rect class=\"plot-area\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"#fafafa\" "
      "stroke=\"#ccc\"/>\n",
      px(x0), px(y0), px(x1 - x0), px(y1 - y0));
}

// Horizontal grid lines and labels of a y axis.
std::string y_axis(const Scale& s, const Axis& ax, double x0, double x1) {
  std::string out;
  const std::vector<double> ticks = ax.log ? log_ticks(s.lo, s.hi) : nice_ticks(s.lo, s.hi);
  for (double t : ticks) {
    if (t < s.lo - 1e-12 * std::fabs(s.hi - s.lo) || t > s.hi + 1e-12 * std::fabs(s.hi - s.lo))
      continue;
    const double y = s(t);
    out += fmt::format(
        "<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#e4e4e4\"/>"
        "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"end\" dominant-baseline=\"middle\">"
        "{}</text>\n",
        px(x0), px(x1), px(y), px(y), px(x0 - 6), px(y), escape(tick_text(t, ax)));
  }
  if (!ax.label.empty())
    out += fmt::format(
        "<text class=\"axis-label\" transform=\"translate(14 {}) rotate(-90)\" "
        "text-anchor=\"middle\">{}</text>\n",
        px((s.a + s.b) / 2), escape(ax.label));
  return out;
}

std::string x_axis_numeric(const Scale& s, const Axis& ax, double y0, double y1, double h) {
  std::string out;
  const std::vector<double> ticks = ax.log ? log_ticks(s.lo, s.hi) : nice_ticks(s.lo, s.hi);
  for (double t : ticks) {
    if (t < s.lo - 1e-12 * std::fabs(s.hi - s.lo) || t > s.hi + 1e-12 * std::fabs(s.hi - s.lo))
      continue;
    const double x = s(t);
    out += fmt::format(
        "<line class=\"grid\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#e4e4e4\"/>"
        "<text class=\"tick\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        px(x), px(x), px(y0), px(y1), px(x), px(y1 + 16), escape(tick_text(t, ax)));
  }
  if (!ax.label.empty())
    out += fmt::format(
        "<text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        px((s.a + s.b) / 2), px(h - 12), escape(ax.label));
  return out;
}

// Category labels under the plot, slanted so long names fit.
std::string x_axis_categories(const std::vector<std::string>& cats,
                              const std::vector<double>& centers, double y1, const Axis& ax,
                              double h) {
  std::string out;
  for (std::size_t i = 0; i < cats.size(); ++i)
    out += fmt::format(
        "<text class=\"tick category\" transform=\"translate({} {}) rotate(-30)\" "
        "text-anchor=\"end\">{}<title>{}</title></text>\n",
        px(centers[i] + 4), px(y1 + 14), escape(short_label(cats[i])), escape(cats[i]));
  if (!ax.label.empty())
    out += fmt::format(
        "<text class=\"axis-label\" x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>\n",
        px((kLeft + kWidth - kRight) / 2), px(h - 6), escape(ax.label));
  return out;
}

std::string title_el(const std::string& tooltip) {
  return "<title>" + escape(tooltip) + "</title>";
}

}  // namespace

const char* series_color(std::size_t i) {
  static const char* colors[] = {"#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9",
                                 "#D55E00", "#F0E442", "#000000", "#999999", "#882255"};
  return colors[i % (sizeof(colors) / sizeof(colors[0]))];
}

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::vector<double> nice_ticks(double lo, double hi, int target) {
  if (!(hi > lo)) return {lo};
  const double raw = (hi - lo) / std::max(target, 1);
  const double mag = std::pow(10, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (raw <= m * mag * (1 + 1e-9)) {
      step = m * mag;
      break;
    }
  std::vector<double> t;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double v = first; v <= hi + step * (1 - 1e-9) && t.size() < 50; v += step)
    t.push_back(std::fabs(v) < step * 1e-9 ? 0.0 : v);
  return t;
}

std::vector<double> log_ticks(double lo, double hi) {
  std::vector<double> t;
  const int a = static_cast<int>(std::floor(std::log10(lo) + 1e-9));
  const int b = static_cast<int>(std::ceil(std::log10(hi) - 1e-9));
  for (int e = a; e <= b; ++e) {
    const double p = std::pow(10.0, e);
    t.push_back(p);
    if (b - a < 3 && e < b) {
      t.push_back(2 * p);
      t.push_back(5 * p);
    }
  }
  return t;
}

std::string render(const BarChart& c) {
  const double h = kHeight, x0 = kLeft, x1 = kWidth - kRight, y0 = kTop, y1 = h - kBottom;
  std::vector<double> values;
  std::size_t marks = 0, intervals = 0;
  for (const auto& row : c.bars)
    for (const Bar& b : row)
      if (b.present) {
        values.push_back(b.value);
        if (b.lo) values.push_back(*b.lo);
        if (b.hi) values.push_back(*b.hi);
        ++marks;
        intervals += b.lo && b.hi;
      }
  if (c.reference) values.push_back(*c.reference);
  auto [lo, hi] = axis_range(values, c.y, /*zero=*/true);
  Scale ys{lo, hi, y1, y0, c.y.log};
  std::string out = open_svg(c.id, c.title, h, marks, intervals, "bars");
  out += plot_area(x0, y0, x1, y1);
  out += y_axis(ys, c.y, x0, x1);
  const std::size_t nc = std::max<std::size_t>(c.categories.size(), 1);
  const std::size_t ns = std::max<std::size_t>(c.series.size(), 1);
  const double group = (x1 - x0) / static_cast<double>(nc);
  const double bar_w = group * 0.8 / static_cast<double>(ns);
  std::vector<double> centers;
  for (std::size_t ci = 0; ci < c.categories.size(); ++ci)
    centers.push_back(x0 + group * (static_cast<double>(ci) + 0.5));
  const double base = ys(std::max(lo, 0.0));
  for (std::size_t si = 0; si < c.bars.size(); ++si) {
    for (std::size_t ci = 0; ci < c.bars[si].size() && ci < c.categories.size(); ++ci) {
      const Bar& b = c.bars[si][ci];
      if (!b.present) continue;
      const double x =
          x0 + group * static_cast<double>(ci) + group * 0.1 + bar_w * static_cast<double>(si);
      const double top = ys(b.value);
      std::string tip =
          fmt::format("{} · {}: {}", c.series[si], c.categories[ci], value_text(b.value, c.y));
      if (!b.tooltip.empty()) tip += "\n" + b.tooltip;
      out += fmt::format(
          "<rect class=\"mark bar\" data-series=\"{}\" data-category=\"{}\" data-value=\"{}\" "
          "x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\">{}</rect>\n",
          escape(c.series[si]), escape(c.categories[ci]), num(b.value), px(x),
          px(std::min(top, base)), px(std::max(bar_w - 1, 1.0)), px(std::fabs(base - top)),
          series_color(si), title_el(tip));
      if (b.lo && b.hi) {
        const double cx = x + bar_w / 2;
        out += fmt::format(
            "<line class=\"ci\" data-series=\"{}\" data-category=\"{}\" data-lo=\"{}\" "
            "data-hi=\"{}\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#222\" "
            "stroke-width=\"1.5\">{}</line>\n",
            escape(c.series[si]), escape(c.categories[ci]), num(*b.lo), num(*b.hi), px(cx), px(cx),
            px(ys(*b.lo)), px(ys(*b.hi)), title_el(tip));
        for (double v : {*b.lo, *b.hi})
          out += fmt::format(
              "<line class=\"ci-cap\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#222\"/>\n",
              px(cx - std::min(4.0, bar_w / 3)), px(cx + std::min(4.0, bar_w / 3)), px(ys(v)),
              px(ys(v)));
      }
    }
  }
  if (c.reference)
    out += fmt::format(
        "<line class=\"reference\" x1=\"{}\" x2=\"{}\" y1=\"{}\" y2=\"{}\" stroke=\"#555\" "
        "stroke-dasharray=\"4 3\"/>\n",
        px(x0), px(x1), px(ys(*c.reference)), px(ys(*c.reference)));
  out += x_axis_categories(c.categories, centers, y1, Axis{}, h);
  out += "</svg>\n";
  return out;
}

std::string render(const LineChart& c) {
  const double h = kHeight, x0 = kLeft, x1 = kWidth - kRight, y0 = kTop;
  const bool categorical = !c.x_categories.empty();
  const double y1 = h - (categorical ? kBottom : 48);
  std::vector<double> xs, yv;
  std::size_t marks = 0;
  for (const LineSeries& s : c.series) {
    for (const LinePoint& p : s.points) {
      xs.push_back(p.x);
      yv.push_back(p.y);
    }
    marks += c.markers ? s.points.size() : (s.points.empty() ? 0 : 1);
  }
  Scale xsc, ysc;
  if (categorical) {
    const double n = static_cast<double>(c.x_categories.size());
    xsc = Scale{-0.5, n - 0.5, x0, x1, false};
  } else {
    auto [lo, hi] = axis_range(xs, c.x, false);
    xsc = Scale{lo, hi, x0, x1, c.x.log};
  }
  auto [ylo, yhi] = axis_range(yv, c.y, c.y.percent);
  ysc = Scale{ylo, yhi, y1, y0, c.y.log};
  std::string out = open_svg(c.id, c.title, h, marks, 0, c.markers ? "points" : "lines");
  out += plot_area(x0, y0, x1, y1);
  out += y_axis(ysc, c.y, x0, x1);
  if (categorical) {
    std::vector<double> centers;
    for (std::size_t i = 0; i < c.x_categories.size(); ++i)
      centers.push_back(xsc(static_cast<double>(i)));
    out += x_axis_categories(c.x_categories, centers, y1, c.x, h);
  } else {
    out += x_axis_numeric(xsc, c.x, y0, y1, h);
  }
  for (std::size_t si = 0; si < c.series.size(); ++si) {
    const LineSeries& s = c.series[si];
    std::string d;
    std::size_t drawn = 0;
    for (const LinePoint& p : s.points) {
      if (c.x.log && p.x <= 0) continue;
      d += fmt::format("{}{},{} ", drawn++ ? "L" : "M", px(xsc(p.x)), px(ysc(p.y)));
    }
    if (!s.points.empty()) {
      if (c.markers)
        out += fmt::format(
            "<path class=\"line\" d=\"{}\" fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\"/>\n", d,
            series_color(si));
      else
        out += fmt::format(
            "<path class=\"mark line\" data-series=\"{}\" data-points=\"{}\" d=\"{}\" "
            "fill=\"none\" stroke=\"{}\" stroke-width=\"1.5\">{}</path>\n",
            escape(s.name), s.points.size(), d, series_color(si),
            title_el(fmt::format("{}: {} points", s.name, s.points.size())));
    }
    if (!c.markers) continue;
    for (const LinePoint& p : s.points) {
      std::string xt = categorical && p.x >= 0 && p.x < static_cast<double>(c.x_categories.size())
                           ? c.x_categories[static_cast<std::size_t>(p.x)]
                           : value_text(p.x, c.x);
      std::string tip = fmt::format("{} · {}: {}", s.name, xt, value_text(p.y, c.y));
      if (!p.tooltip.empty()) tip += "\n" + p.tooltip;
      out += fmt::format(
          "<circle class=\"mark point\" data-series=\"{}\" data-x=\"{}\" data-y=\"{}\" cx=\"{}\" "
          "cy=\"{}\" r=\"4\" fill=\"{}\" stroke=\"#fff\">{}</circle>\n",
          escape(s.name), num(p.x), num(p.y), px(xsc(p.x)), px(ysc(p.y)), series_color(si),
          title_el(tip));
    }
  }
  out += "</svg>\n";
  return out;
}

std::string render(const StackedChart& c) {
  constexpr double kRow = 26, kRowLeft = 190;
  const double x0 = kRowLeft, x1 = kWidth - kRight, y0 = kTop;
  const double y1 = y0 + kRow * static_cast<double>(std::max<std::size_t>(c.rows.size(), 1));
  const double h = y1 + 48;
  std::vector<double> totals;
  std::size_t marks = 0;
  for (const auto& row : c.segments) {
    double t = 0;
    for (const Segment& s : row)
      if (s.value > 0) {
        t += s.value;
        ++marks;
      }
    totals.push_back(t);
  }
  auto [lo, hi] = axis_range(totals, c.x, true);
  Scale xs{lo, hi, x0, x1, false};
  std::string out = open_svg(c.id, c.title, h, marks, 0, "stacked");
  out += plot_area(x0, y0, x1, y1);
  out += x_axis_numeric(xs, c.x, y0, y1, h);
  for (std::size_t r = 0; r < c.rows.size(); ++r) {
    const double y = y0 + kRow * static_cast<double>(r) + 4;
    out += fmt::format(
        "<text class=\"tick row\" x=\"{}\" y=\"{}\" text-anchor=\"end\" "
        "dominant-baseline=\"middle\">{}<title>{}</title></text>\n",
        px(x0 - 6), px(y + (kRow - 8) / 2), escape(short_label(c.rows[r], 28)), escape(c.rows[r]));
    double acc = 0;
    for (const Segment& s : r < c.segments.size() ? c.segments[r] : std::vector<Segment>{}) {
      if (s.value <= 0) continue;
      const std::size_t color = static_cast<std::size_t>(
          std::find(c.parts.begin(), c.parts.end(), s.name) - c.parts.begin());
      const double xa = xs(acc), xb = xs(acc + s.value);
      out += fmt::format(
          "<rect class=\"mark bar segment\" data-series=\"{}\" data-category=\"{}\" "
          "data-value=\"{}\" x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"{}\" "
          "stroke=\"#fff\" stroke-width=\"0.5\">{}</rect>\n",
          escape(s.name), escape(c.rows[r]), num(s.value), px(xa), px(y),
          px(std::max(xb - xa, 0.5)), px(kRow - 8), series_color(color),
          title_el(fmt::format("{} · {}: {} ({:.1f}%)", c.rows[r], s.name, value_text(s.value, c.x),
                               totals[r] > 0 ? 100 * s.value / totals[r] : 0.0)));
      acc += s.value;
    }
  }
  out += "</svg>\n";
  return out;
}

std::string legend(const std::vector<std::string>& names) {
  std::string out = "<div class=\"legend\">";
  for (std::size_t i = 0; i < names.size(); ++i)
    out += fmt::format("<span><i style=\"background:{}\"></i>{}</span>", series_color(i),
                       escape(names[i]));
  return out + "</div>\n";
}

}  // namespace metamath::analysis::svg
