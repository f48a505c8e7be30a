// Injected at the end of a copy of a `metamath report` page by tests/analysis/report_test.cpp and
// run by headless Chromium (--dump-dom): it measures what the browser actually laid out and
// writes its findings as JSON into <pre id="render-check">, which the test reads from the DOM.
//
// Per chart (svg.chart): the marks counted in the DOM (.mark: bars, segments, points, lines) and
// the interval whiskers (.ci), the chart's own data-marks / data-intervals, its rendered size,
// the marks whose box lies outside the plot area, the text whose box leaves the chart, and for
// line marks their data-points. For the page: elements that would fetch something (script src,
// link href, img, iframe, object, url() in styles) and the full height (for the screenshot).
(function () {
  const tol = 1.5;  // px: anti-aliasing and stroke widths
  function box(el) {
    const r = el.getBoundingClientRect();
    return { x0: r.left, y0: r.top, x1: r.right, y1: r.bottom, w: r.width, h: r.height };
  }
  function inside(b, area, pad) {
    return b.x0 >= area.x0 - pad && b.x1 <= area.x1 + pad && b.y0 >= area.y0 - pad &&
        b.y1 <= area.y1 + pad;
  }
  const charts = [];
  for (const svg of document.querySelectorAll('svg.chart')) {
    const area = box(svg.querySelector('rect.plot-area'));
    const whole = box(svg);
    const marks = svg.querySelectorAll('.mark');
    let outside = 0;
    const lines = [];
    for (const m of marks) {
      // circles may overhang the plot area by their radius
      const pad = m.tagName === 'circle' ? Number(m.getAttribute('r')) + tol : tol;
      if (!inside(box(m), area, pad)) outside++;
      if (m.tagName === 'path') lines.push(Number(m.dataset.points));
    }
    let textOut = 0;
    for (const t of svg.querySelectorAll('text')) {
      if (!inside(box(t), whole, tol)) textOut++;
    }
    charts.push({
      id: svg.dataset.chart,
      marks: marks.length,
      intervals: svg.querySelectorAll('.ci').length,
      declaredMarks: Number(svg.dataset.marks),
      declaredIntervals: Number(svg.dataset.intervals),
      width: whole.w,
      height: whole.h,
      outside: outside,
      textOutside: textOut,
      linePoints: lines,
      values: Array.from(svg.querySelectorAll('.mark[data-value], .mark[data-y]'))
                  .map(m => [m.dataset.series, m.dataset.category ?? m.dataset.x,
                             Number(m.dataset.value ?? m.dataset.y)]),
    });
  }
  let fetches = document.querySelectorAll(
      'script[src], link[href], img, iframe, object, embed, video, audio, source').length;
  for (const s of document.querySelectorAll('style')) {
    if (/url\(|@import/.test(s.textContent)) fetches++;
  }
  let data = null;
  try {
    data = JSON.parse(document.getElementById('report-data').textContent);
  } catch (e) {
    data = String(e);
  }
  const out = document.createElement('pre');
  out.id = 'render-check';
  out.textContent = JSON.stringify({
    charts: charts,
    fetches: fetches,
    height: Math.ceil(document.documentElement.scrollHeight),
    dataCharts: data && data.charts ? data.charts.length : -1,
  });
  document.body.appendChild(out);
})();
