#pragma once
// Inline SVG charts for `metamath report` (analysis/report.h): grouped bars with interval
// whiskers, lines with point markers (linear or log x), and stacked horizontal bars. Each chart is
// one <svg> element that needs no script, no font file and no network to draw.
//
// Every chart is checkable in a browser's DOM:
//   <svg class="chart" data-chart=ID data-marks=N data-intervals=K ...>
//     <rect class="plot-area" .../>               the plotting rectangle; every mark lies inside
//     <rect class="mark bar" data-series data-category data-value .../>     (bars, segments)
//     <circle class="mark point" data-series data-x data-y .../>            (line markers)
//     <path class="mark line" data-series data-points=P .../>               (lines without markers)
//     <line class="ci" data-series data-category data-lo data-hi .../>      (interval whiskers)
// and each mark carries a <title> (the browser's tooltip) with its numbers.
#include <optional>
#include <string>
#include <vector>

namespace metamath::analysis::svg {

// The colour of series i (Okabe-Ito, then a few more; cycles).
const char* series_color(std::size_t i);

// Text escaped for SVG/HTML element content and attribute values.
std::string escape(std::string_view s);

struct Axis {
  std::string label;
  bool percent = false;            // values in [0, 1] shown as %
  bool log = false;                // log10 scale (values must be > 0)
  std::optional<double> min, max;  // default: from the data (bars: from 0)
};

struct Bar {
  double value = 0;
  std::optional<double> lo, hi;  // an interval drawn as a whisker
  std::string tooltip;           // extra lines after "series · category: value"
  bool present = false;
};

struct BarChart {
  std::string id, title;
  std::vector<std::string> categories;  // x groups
  std::vector<std::string> series;      // bars within a group
  std::vector<std::vector<Bar>> bars;   // [series][category]; absent bars are not drawn
  Axis y;
  std::optional<double> reference;  // a dashed horizontal line (e.g. a baseline), per chart
};

struct LinePoint {
  double x = 0, y = 0;
  std::string tooltip;
};
struct LineSeries {
  std::string name;
  std::vector<LinePoint> points;  // drawn in the given order
};
struct LineChart {
  std::string id, title;
  std::vector<LineSeries> series;
  Axis x, y;
  bool markers = true;  // a circle per point (the marks); false: one path per series is the mark
  // Categorical x: points have x = 0, 1, ... and these labels are the ticks.
  std::vector<std::string> x_categories;
};

struct Segment {
  std::string name;  // the stack part (e.g. a record type)
  double value = 0;
};
struct StackedChart {
  std::string id, title;
  std::vector<std::string> rows;               // one horizontal bar each
  std::vector<std::vector<Segment>> segments;  // [row]; zero segments are not drawn
  std::vector<std::string> parts;              // every segment name, in legend (colour) order
  Axis x;
};

// Each returns the <svg> element. Marks follow the header comment; the counts go into
// data-marks / data-intervals.
std::string render(const BarChart& c);
std::string render(const LineChart& c);
std::string render(const StackedChart& c);

// A legend (HTML) for series names, coloured as in the charts.
std::string legend(const std::vector<std::string>& names);

// Tick values for [lo, hi]: about `target` "nice" steps (1, 2, 5 x 10^k); log: powers of ten
// (with 2 and 5 between when the range spans fewer than 3 decades).
std::vector<double> nice_ticks(double lo, double hi, int target = 5);
std::vector<double> log_ticks(double lo, double hi);

}  // namespace metamath::analysis::svg
