"""One-page HTML summary of a purchase plan that a finance reader can forward.

Self-contained: one file, inline CSS, an inline SVG chart of expected cost per day (committed / spot /
on-demand stacked), no scripts, no fonts or images from the network. Every number carries its unit
(USD, USD/h, GPUs, GPU-hours) and the assumptions behind it are listed on the page. The money is in two clearly
separated blocks: inside the plan window, and over the commitment terms as finance books it (obligation after the
window, total obligation, upfront cash by month, expected cost over the horizon with its range and vs all
on-demand, present value at the stated cost of capital), followed by what to buy (firm or tentative, expected use
over each term), why each payment option and term, and the plan's notes. Every text is HTML-escaped.
No streamlit here, so the CLI or a scheduled job can write the same page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

import pandas as pd

from app import fmt
from optimizer.plan import Plan
from optimizer.summary import commitment_obligation_usd, upfront_by_month

COLORS = {"committed": "#4c78a8", "spot": "#f58518", "on-demand": "#e45756"}
_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#222;max-width:960px;margin:24px auto;
padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:16px;margin:22px 0 6px;border-bottom:1px solid #ddd}
h3{font-size:14px;margin:14px 0 4px}
.sub{color:#555;margin:0 0 12px}.grid{display:grid;grid-template-columns:repeat(3,1fr);gap:8px}
.card{border:1px solid #ddd;border-radius:6px;padding:8px 10px}.card b{display:block;font-size:18px}
.card span{color:#555;font-size:12px}table{border-collapse:collapse;width:100%;font-size:13px}
th,td{border-bottom:1px solid #eee;padding:4px 6px;text-align:left}td.n,th.n{text-align:right}
.note{color:#555;font-size:12px}@media print{body{margin:0}}
"""


def _card(label: str, value: str, note: str) -> str:
    return f'<div class="card"><span>{escape(label)}</span><b>{escape(value)}</b><span>{escape(note)}</span></div>'


def _table(headers: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    head = "".join(f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>"
                   for i, h in enumerate(headers))
    body = "".join("<tr>" + "".join(f'<td class="n">{escape(c)}</td>' if i in numeric else f"<td>{escape(c)}</td>"
                                    for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def cost_svg(daily: pd.DataFrame, width: int = 900, height: int = 220) -> str:
    """Stacked bars of expected USD per day and category as inline SVG (``daily``: day, category, usd)."""
    if daily.empty:
        return '<p class="note">No cost to draw.</p>'
    table = daily.pivot_table(index="day", columns="category", values="usd", aggfunc="sum", fill_value=0.0)
    table = table.reindex(columns=[c for c in COLORS if c in table.columns])
    totals = table.sum(axis=1)
    top = float(totals.max()) or 1.0
    left, plot_h = 70, height - 40
    bar_w = (width - left - 10) / len(table)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
             f'aria-label="Expected cost per day (USD)">']
    for frac in (0.0, 0.5, 1.0):
        y = 10 + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 10}" y1="{y:.1f}" y2="{y:.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end">'
                     f'{escape(f"{top * frac:,.0f}")}</text>')
    for i, (day, row) in enumerate(table.iterrows()):
        y = 10 + plot_h
        for cat, usd in row.items():
            h = plot_h * float(usd) / top
            y -= h
            parts.append(f'<rect x="{left + i * bar_w:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 0.5):.1f}" '
                         f'height="{h:.1f}" fill="{COLORS[cat]}"><title>{pd.Timestamp(day):%Y-%m-%d} {cat}: '
                         f'{escape(fmt.usd(float(usd)))}</title></rect>')
    first, last = pd.Timestamp(table.index[0]), pd.Timestamp(table.index[-1])
    parts.append(f'<text x="{left}" y="{height - 8}" font-size="11">{first:%Y-%m-%d}</text>'
                 f'<text x="{width - 10}" y="{height - 8}" font-size="11" text-anchor="end">{last:%Y-%m-%d}</text>'
                 f'<text x="12" y="{10 + plot_h / 2:.0f}" font-size="11" transform="rotate(-90 12 '
                 f'{10 + plot_h / 2:.0f})" text-anchor="middle">USD per day</text>')
    legend_x = left
    for cat, color in COLORS.items():
        parts.append(f'<rect x="{legend_x + 200}" y="{height - 19}" width="10" height="10" fill="{color}"/>'
                     f'<text x="{legend_x + 214}" y="{height - 10}" font-size="11">{cat}</text>')
        legend_x += 90
    parts.append("</svg>")
    return "".join(parts)


def _scenarios_text(scenarios: object) -> str:
    """The plan's demand scenarios in words (``assumptions['scenarios']`` of plan.json)."""
    if isinstance(scenarios, Mapping) and "history_days" in scenarios:
        return (f"{scenarios['sample_paths']} joint sample paths of the forecast (weight "
                f"{1.0 - float(scenarios['history_weight']):.2f}) and {scenarios['history_days']} replays of the "
                f"recent history, one per day (weight {float(scenarios['history_weight']):.2f})")
    if isinstance(scenarios, Mapping) and "sample_paths" in scenarios:
        return f"{scenarios['sample_paths']} equally weighted joint sample paths of the forecast"
    if isinstance(scenarios, Mapping) and scenarios:
        return "the forecast's " + ", ".join(f"{k} (weight {float(w):.1f})" for k, w in scenarios.items())
    return "the forecast's demand scenarios"


def _status(c) -> str:
    if c.existing:
        return "owned"
    return {True: "firm (buy now)", False: "tentative", None: "buy"}[c.firm]


def _term_cards(plan: Plan, extra: Mapping[str, tuple[str, str]]) -> str:
    """The money over the commitment terms, or one line when the plan is judged on its window alone."""
    e = plan.expected
    term = plan.term
    obligation = e.obligation_total_usd if e.obligation_total_usd is not None else commitment_obligation_usd(plan)
    by_month = e.upfront_by_month if e.upfront_by_month is not None else upfront_by_month(plan)
    months = {m: v for m, v in by_month.items() if v > 0}
    upfront = (_table(["Month of purchase", "Upfront cash"], [[m, fmt.usd(v)] for m, v in months.items()], {1})
               if months else '<p class="note">No upfront cash: no all- or partial-upfront commitments.</p>')
    if term is None:
        return (f"<h2>Over the commitment terms</h2><p>Judged on the plan window alone (no term runs past it). "
                f"Commitment obligation over the full terms: {escape(fmt.usd(obligation))}, paid whether used or "
                f"not.</p>{upfront}")
    rate = fmt.pct(term.cost_of_capital, 0)
    save = (None if e.horizon_all_on_demand_usd is None or e.horizon_total_usd is None
            else e.horizon_all_on_demand_usd - e.horizon_total_usd)
    cards = [
        _card("Obligation after the window", fmt.usd(e.obligation_after_window_usd),
              "owed by the new commitments after the window, used or not"),
        _card("Total obligation over the terms", fmt.usd(obligation), "upfront plus every recurring hour"),
        _card("Upfront cash", fmt.usd(e.upfront_usd), "paid at purchase; by month below"),
        _card(f"Expected cost to {term.horizon_end:%Y-%m-%d}", fmt.usd(e.horizon_total_usd),
              f"p10 {fmt.usd(e.horizon_p10_usd)} - p90 {fmt.usd(e.horizon_p90_usd)}"),
        _card("All on-demand over the horizon", fmt.usd(e.horizon_all_on_demand_usd), _saving_text(save)),
        _card(f"Present value at {rate}/year", fmt.usd(e.present_value_usd),
              f"all on-demand {fmt.usd(e.present_value_all_on_demand_usd)}"),
        *(_card(label, value, note) for label, (value, note) in extra.items()),
    ]
    horizon_h = int((term.horizon_end - plan.window_start) / pd.Timedelta(hours=1))
    return (f"<h2>Over the commitment terms: {plan.window_start:%Y-%m-%d} to {term.horizon_end:%Y-%m-%d}</h2>"
            f'<p class="sub">Each commitment judged over its whole term ({horizon_h:,} h, to the end of the longest '
            f"term considered); cash flows discounted at a cost of capital of {escape(rate)}/year.</p>"
            f'<div class="grid">{"".join(cards)}</div><h3>Upfront cash by month</h3>{upfront}')


def plan_summary_html(plan: Plan, *, title: str = "GPU purchase plan", data_label: str = "",
                      daily: pd.DataFrame | None = None, settings: Mapping[str, str] | None = None,
                      extra_figures: Mapping[str, tuple[str, str]] | None = None,
                      term_figures: Mapping[str, tuple[str, str]] | None = None,
                      payment: Sequence[str] = (), notes: Sequence[str] = ()) -> str:
    """The one-page summary as an HTML document (every text escaped).

    Args:
        plan: the purchase plan.
        title: page heading.
        data_label: which data the plan was made from (shown under the title).
        daily: expected cost per day and category (``day, category, usd``) for the chart; None = no chart.
        settings: the what-if settings behind the plan, label -> value with unit (listed as assumptions).
        extra_figures: more headline figures for the window block, label -> (value with unit, note).
        term_figures: more figures for the block over the commitment terms (e.g. vs a look-back recommender in
            present value); shown in the window block when the plan is judged on its window alone.
        payment: why each commitment line's payment option and term, one sentence each (``app.state.payment_lines``).
        notes: the plan's notes (short history, where the long-term demand comes from), one line each.
    """
    e = plan.expected
    snap = ", ".join(plan.assumptions.get("catalog", {}).get("snapshot_dates", [])) or "unknown"
    util = ("no commitments" if e.commitment_utilization is None else fmt.pct(e.commitment_utilization))
    cards = [
        _card("Expected cost in the window", fmt.usd(e.total_usd), "probability-weighted over demand scenarios"),
        _card("Cost range p10 - p90 in the window", f"{fmt.usd(e.total_p10_usd)} - {fmt.usd(e.total_p90_usd)}",
              "if demand comes in low / high"),
        _card("All on-demand would cost", fmt.usd(e.all_on_demand_usd), "same demand, list prices, no commitment"),
        _card("Savings vs all on-demand", fmt.usd(e.savings_usd), f"{e.savings_pct:.1f} % of the on-demand cost"),
        _card("Commitment utilisation", util, "share of committed GPU-hours used in the window (expected)"),
    ]
    extra = {**(extra_figures or {}), **((term_figures or {}) if plan.term is None else {})}
    for label, (value, note) in extra.items():
        cards.append(_card(label, value, note))
    if plan.commitments:
        commit = _table(
            ["Status", "Buy", "Instance type", "Option", "GPU model", "GPUs", "Start (UTC)", "Term", "USD/h each",
             "Upfront USD each", "Window cost", "Obligation", "Expected use over its term"],
            [[_status(c), f"{c.count}", c.instance_type, c.purchase_option, c.gpu_model, f"{c.gpus:g}",
              f"{c.start:%Y-%m-%d}", fmt.hours(c.term_hours), fmt.usd_per_hour(c.hourly_usd_per_instance),
              fmt.usd(c.upfront_usd_per_instance), fmt.usd(c.count * c.effective_hourly_usd * _window_hours(plan, c)),
              "-" if c.existing else fmt.usd(c.obligation_usd), fmt.pct(c.expected_utilization)]
             for c in plan.commitments],
            {1, 5, 8, 9, 10, 11, 12})
        commit += ('<p class="note">Firm: bought now. Tentative: a laddered purchase in a later month, re-decided '
                   "on that month's forecast. The obligation is owed whether the capacity is used or not.</p>")
    else:
        reason = plan.assumptions.get("no_commitment_reason") or (
            "demand is too uncertain or too low over the terms for a commitment to pay off")
        commit = f"<p>No commitments: {escape(str(reason))}.</p>"
    pay = (f"<h2>Why this payment option and term</h2><ul>{''.join(f'<li>{escape(x)}</li>' for x in payment)}</ul>"
           if payment else "")
    spot = _table(["GPU model", "Instance type", "At most", "USD/h each", "Interruptions (monthly)", "Rework"],
                  [[s.gpu_model, s.instance_type, f"{s.max_instances} instances",
                    fmt.usd_per_hour(s.usd_per_instance_hour), s.interruption_bucket or "unknown",
                    fmt.pct(s.rework_fraction, 2)] for s in plan.spot],
                  {2, 3, 5}) if plan.spot else "<p>No spot in this plan.</p>"
    od = _table(["GPU model", "Instance type", "Rate"],
                [[o.gpu_model, o.instance_type, fmt.usd_per_gpu_hour(o.usd_per_gpu_hour)] for o in plan.on_demand], {2})
    a = plan.assumptions
    assumptions = [f"Window {plan.window_start:%Y-%m-%d %H:%M} to {plan.window_end:%Y-%m-%d %H:%M} UTC "
                   f"({plan.hours:,} h), region {plan.region}, prices as of {snap}.",
                   "Inside the window, commitments are charged at their effective hourly rate (upfront amortised "
                   "over the term) for every window hour; spot at its price x (1 + rework); the rest on-demand at "
                   "list price.",
                   f"Expected = the average over {_scenarios_text(a.get('scenarios'))}; the range is their "
                   "10th-90th percentile."]
    if a.get("commitment_cost_basis"):
        assumptions.append(f"Commitments: {a['commitment_cost_basis']}.")
    for label, value in (settings or {}).items():
        assumptions.append(f"{label}: {value}")
    note_list = (f"<h2>Notes</h2><ul>{''.join(f'<li>{escape(str(x))}</li>' for x in notes)}</ul>" if notes else "")
    chart = "" if daily is None else f"<h3>Expected cost per day in the window</h3>{cost_svg(daily)}"
    sub = f"{escape(data_label)} · " if data_label else ""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1><p class=\"sub\">{sub}{escape(plan.region)}, {plan.window_start:%Y-%m-%d} to "
            f"{plan.window_end:%Y-%m-%d} UTC · all amounts in USD</p>{note_list}"
            f"<h2>Inside the window: {plan.window_start:%Y-%m-%d} to {plan.window_end:%Y-%m-%d}</h2>"
            f'<div class="grid">{"".join(cards)}</div>{chart}{_term_cards(plan, term_figures or {})}'
            f"<h2>What to buy: commitments</h2>{commit}{pay}<h2>Spot allowances</h2>{spot}"
            f"<h2>On-demand for the rest</h2>{od}"
            f"<h2>Assumptions</h2><ul>{''.join(f'<li>{escape(x)}</li>' for x in assumptions)}</ul>"
            f'<p class="note">{escape(_glossary("commitment", "obligation", "cost_of_capital", "firm", "utilisation"))}'
            "</p></body></html>")


def _saving_text(save: float | None) -> str:
    if save is None:
        return "same demand, on-demand only"
    return f"the plan saves {fmt.usd(save)}" if save >= 0 else f"the plan costs {fmt.usd(-save)} more"


def _glossary(*names: str) -> str:
    return " ".join(fmt.GLOSSARY[n].replace("**", "") for n in names)


def _window_hours(plan: Plan, c) -> int:
    hours = pd.date_range(plan.window_start, plan.window_end, freq="h", inclusive="left")
    return int(c.active(hours).sum())
