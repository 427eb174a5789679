"""What a finished screen must not show, checked in a real browser page (Playwright, headless Chromium).

:func:`problems` runs :data:`CHECKS_JS` in the page and returns one line per problem:

- ``cut``: text cut off: a visible element that clips its content sideways (``overflow`` hidden, clip, auto or
  scroll, or an ellipsis) and is narrower than its content (``scrollWidth > clientWidth``); an input whose value
  is wider than its box; a Vega label shortened with an ellipsis (``…``) or running past its chart's edge; and any
  canvas data grid (``st.dataframe``), whose cells cannot be checked,
  so the app draws its tables as HTML (``app.view.table``).
- ``missing``: a visible text that is ``None``, ``nan``, ``NaN``, ``NaT``, ``<NA>``, ``null`` or ``undefined``
  as a word.
- ``money``: an amount of money with more than two decimals: a number with three or more decimals next to
  ``USD`` in a text, or in a table cell of a column whose label says USD.
- ``legend``: a Vega legend (SVG renderer: Streamlit's default for small data) that lists fewer entries than
  the values of its scale (Vega's ``aria-label`` says "with N values", computed from the data's series), or that
  repeats a colour.

Units: pixels for widths; a 1-pixel tolerance for sub-pixel layout, 4 pixels for a chart label's glyph box at the
chart's edge.
"""

from __future__ import annotations

CHECKS_JS = r"""
(root) => {
  root = root ? document.querySelector(root) : document.body;
  const out = [];
  const visible = (e) => {
    const r = e.getBoundingClientRect();
    if (r.width <= 0 || r.height <= 0) return false;
    for (let a = e; a && a !== document.body; a = a.parentElement) {
      const s = getComputedStyle(a);
      if (s.display === 'none' || s.visibility === 'hidden') return false;
      if (a.hidden || a.getAttribute('aria-hidden') === 'true') return false;
    }
    return true;
  };
  const EDGE = 4;  // px a glyph box may pass the chart's edge (a rotated title's descenders) before it is cut
  const short = (t) => (t || '').replace(/\s+/g, ' ').trim().slice(0, 80);
  const where = (e) => {
    const tid = e.closest('[data-testid]');
    return (tid ? tid.getAttribute('data-testid') : e.tagName.toLowerCase());
  };
  // 1. cut text
  for (const e of root.querySelectorAll('*')) {
    if (e.closest('svg') || !visible(e)) continue;
    const s = getComputedStyle(e);
    const clips = ['hidden', 'clip', 'auto', 'scroll'].includes(s.overflowX) || s.textOverflow === 'ellipsis';
    if (!clips || e.clientWidth <= 1) continue;  // 1 px: visually hidden on purpose (e.g. "skip to content")
    if (e.scrollWidth > e.clientWidth + 1 && short(e.innerText)) {
      out.push(`cut: ${where(e)} shows ${e.clientWidth}px of ${e.scrollWidth}px: "${short(e.innerText)}"`);
    }
  }
  const ctx = document.createElement('canvas').getContext('2d');
  for (const i of root.querySelectorAll('input')) {  // an input's value is drawn, not laid out: measure it
    if (!visible(i) || !i.value || ['hidden', 'checkbox', 'radio', 'range', 'file'].includes(i.type)) continue;
    const s = getComputedStyle(i);
    ctx.font = `${s.fontStyle} ${s.fontWeight} ${s.fontSize} ${s.fontFamily}`;
    const room = i.clientWidth - parseFloat(s.paddingLeft) - parseFloat(s.paddingRight);
    const need = ctx.measureText(i.value).width;
    if (need > room + 1) {
      out.push(`cut: input shows ${Math.round(room)}px of ${Math.round(need)}px: "${short(i.value)}"`);
    }
  }
  for (const t of root.querySelectorAll('svg text')) {
    if (!visible(t)) continue;
    const legendMore = t.closest('.role-legend-label') && t.textContent.startsWith('\u2026');  // see 4.
    if (!legendMore && t.textContent.includes('\u2026')) out.push(`cut: chart label "${short(t.textContent)}"`);
    let svg = t.closest('svg');
    while (svg.parentElement && svg.parentElement.closest('svg')) svg = svg.parentElement.closest('svg');
    const box = svg.getBoundingClientRect(), r = t.getBoundingClientRect();
    if (r.right > box.right + EDGE || r.left < box.left - EDGE) {
      out.push(`cut: chart label "${short(t.textContent)}" runs past its chart's edge`);
    }
  }
  for (const g of root.querySelectorAll('[data-testid="stDataFrame"], canvas[data-testid="data-grid-canvas"]')) {
    if (visible(g)) out.push('cut: a canvas data grid (st.dataframe) whose cells cannot be checked');
  }
  // text nodes, for 2. and 3.
  const walker = document.createTreeWalker(root, NodeFilter.SHOW_TEXT);
  const missing = /(^|[^\w.])(None|nan|NaN|NaT|<NA>|null|undefined)(?![\w])/;
  const money = /(\d\.\d{3,}\s*(USD|\$))|((USD|\$)\s*[+-]?\d[\d,]*\.\d{3,})/;
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const text = n.textContent;
    if (!text.trim() || !n.parentElement || !visible(n.parentElement)) continue;
    if (n.parentElement.closest('script, style, code, pre, textarea')) continue;
    if (missing.test(text)) {
      out.push(`missing: "${short(text)}" in ${where(n.parentElement)}: "${short(n.parentElement.innerText)}"`);
    }
    if (money.test(text)) out.push(`money: "${short(text)}" in ${where(n.parentElement)}`);
  }
  for (const table of root.querySelectorAll('table')) {
    if (!visible(table)) continue;
    const heads = [...table.querySelectorAll('thead th')].map(th => th.innerText);
    for (const row of table.querySelectorAll('tbody tr')) {
      [...row.children].forEach((td, i) => {
        if (/USD/.test(heads[i] || '') && /[+-]?\d[\d,]*\.\d{3,}/.test(td.innerText)) {
          out.push(`money: "${short(td.innerText)}" under "${short(heads[i])}"`);
        }
      });
    }
  }
  // 4. legends
  for (const lg of root.querySelectorAll('[aria-roledescription="legend"]')) {
    if (!visible(lg)) continue;
    const label = lg.getAttribute('aria-label') || '';
    const m = label.match(/with (\d+) values?/);
    const labels = [...lg.querySelectorAll('.role-legend-label text')].map(t => t.textContent)
      .filter(t => !t.startsWith('\u2026'));
    if (m && labels.length < Number(m[1])) {
      out.push(`legend: ${labels.length} of ${m[1]} series listed (${short(label)})`);
    }
    const colours = [...lg.querySelectorAll('.role-legend-symbol path')].map(p => {
      const fill = p.getAttribute('fill'), stroke = p.getAttribute('stroke');
      return (fill && fill !== 'transparent' && fill !== 'none') ? fill : stroke;
    });
    const seen = new Set(), repeated = new Set();
    colours.forEach(c => { if (seen.has(c)) repeated.add(c); seen.add(c); });
    if (repeated.size) out.push(`legend: colour(s) ${[...repeated].join(', ')} repeated (${short(label)})`);
  }
  return out;
}
"""


def problems(page, root: str | None = None) -> list[str]:
    """Every problem :data:`CHECKS_JS` finds in ``page`` (a Playwright page), under the ``root`` selector (default
    the whole document), one line each."""
    return list(page.evaluate(CHECKS_JS, root))
