"""Charts for the PDFs: matplotlib figures rendered to deterministic PNG (Agg, no timestamps).

PNG rather than SVG: CJK text as SVG paths costs seconds per chart in matplotlib and again in
WeasyPrint, while a 200 dpi raster prints sharply on A4.

Floats appear only here, for drawing; every printed figure comes from Decimal mart values.
"""

from __future__ import annotations

import io
from datetime import date

from .labels import ALERT_LEVEL, INSURANCE_SHORT, insurance_label

CJK_FAMILY = "Noto Sans CJK SC"
FONT_PACKAGE = "fonts-noto-cjk"

COLORS = {"red": "#c0392b", "amber": "#e69f00", "green": "#2e8b57", "blue": "#1f5fa8", "grey": "#8a8f98"}


class FontMissing(RuntimeError):
    pass


def require_cjk_font() -> str:
    """Path of the CJK font used by charts and PDFs; fails loudly when it is not installed."""
    from matplotlib import font_manager
    from matplotlib.font_manager import FontProperties

    try:
        return font_manager.findfont(FontProperties(family=CJK_FAMILY), fallback_to_default=False)
    except ValueError:
        font_manager._load_fontmanager(try_read_cache=False)  # font installed after the cache was built
        try:
            return font_manager.findfont(FontProperties(family=CJK_FAMILY), fallback_to_default=False)
        except ValueError as exc:
            raise FontMissing(
                f"font {CJK_FAMILY!r} not found: install it with `apt-get install -y {FONT_PACKAGE}`"
            ) from exc


def _rc() -> dict:
    return {
        "font.family": "sans-serif",
        "font.sans-serif": [CJK_FAMILY, "DejaVu Sans"],
        "axes.unicode_minus": False,
        "font.size": 8,
        "axes.titlesize": 9,
        "axes.spines.top": False,
        "axes.spines.right": False,
    }


DPI = 200


def _png(build) -> bytes:
    import matplotlib
    from matplotlib.figure import Figure

    with matplotlib.rc_context(_rc()):
        fig = Figure(layout="tight")
        build(fig)
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=DPI, metadata={"Software": None})
    return buf.getvalue()


def _pct_axis(ax, axis: str = "y") -> None:
    from matplotlib.ticker import PercentFormatter

    (ax.yaxis if axis == "y" else ax.xaxis).set_major_formatter(PercentFormatter(1.0, decimals=0))


def budget_chart(year: int, series: dict[str, list[dict]], months: dict[str, list[dict]]) -> bytes:
    """Per insurance type: cumulative consumption vs time elapsed, and monthly reasonable vs quota."""
    types = sorted(series)

    def build(fig):
        fig.set_size_inches(7.1, 2.2 * max(1, len(types)))
        axes = fig.subplots(max(1, len(types)), 2, squeeze=False, gridspec_kw={"width_ratios": [1.25, 1]})
        for i, t in enumerate(types):
            ax, bx = axes[i]
            rows = series[t]
            xs = [r["as_of_date"] for r in rows]
            ax.plot(xs, [float(r["consumption_rate"]) for r in rows], color=COLORS["blue"], lw=1.6, label="预算消耗率")
            ax.plot(xs, [float(r["time_elapsed"]) for r in rows], color=COLORS["grey"], lw=1, ls="--", label="时间进度")
            ax.plot(
                xs, [float(r["time_elapsed"]) * 1.1 for r in rows], color=COLORS["red"], lw=0.8, ls=":", label="红色预警线(110%)"
            )
            ax.set_xlim(date(year, 1, 1), date(year, 12, 31))
            ax.set_ylim(0, max([1.0] + [float(r["consumption_rate"]) * 1.05 for r in rows]))
            ax.set_xticks([date(year, m, 1) for m in range(1, 13, 2)] + [date(year, 12, 31)],
                          [f"{m}月" for m in range(1, 13, 2)] + ["年末"])
            _pct_axis(ax)
            ax.grid(alpha=0.3)
            ax.set_title(f"{insurance_label(t)} 预算消耗进度")
            ax.legend(loc="upper left", fontsize=7, frameon=False)
            if rows:
                last = rows[-1]
                ax.annotate(
                    f"{float(last['consumption_rate']):.1%}（{ALERT_LEVEL.get(last['alert_level'], last['alert_level'])}）",
                    (last["as_of_date"], float(last["consumption_rate"])),
                    textcoords="offset points",
                    xytext=(4, 4),
                    fontsize=7,
                )
            mrows = months.get(t, [])
            pos = [r["settlement_month"].month - 1 for r in mrows]
            bx.bar(
                [p - 0.2 for p in pos], [float(r["monthly_quota_amount"]) / 1e4 for r in mrows], 0.4,
                color=COLORS["grey"], alpha=0.6, label="月度预算指标",
            )
            bx.bar(
                [p + 0.2 for p in pos], [float(r["reasonable_amount"]) / 1e4 for r in mrows], 0.4,
                color=COLORS["blue"], label="合理费用",
            )
            bx.set_xticks(range(12), [str(m) for m in range(1, 13)])
            bx.set_xlim(-0.6, 11.6)
            bx.set_xlabel("月份")
            bx.set_ylabel("万元")
            top = max([float(r["monthly_quota_amount"]) for r in mrows] + [float(r["reasonable_amount"]) for r in mrows] + [1])
            bx.set_ylim(0, top / 1e4 * 1.3)
            bx.grid(axis="y", alpha=0.3)
            bx.set_title(f"{INSURANCE_SHORT.get(t, t)} 逐月合理费用与指标")
            bx.legend(loc="upper left", fontsize=7, frameon=False, ncol=2)

    return _png(build)


def city_charts(pace_rows: list[dict], deduction_rows: list[dict], vbp_rows: list[dict], top: int = 20) -> bytes:
    """Bureau overview: budget pace, deductions and VBP completion by hospital (worst first)."""

    def build(fig):
        n = max(len(pace_rows[:top]), len(deduction_rows[:top]), len(vbp_rows[:top]), 3)
        fig.set_size_inches(7.1, 2.2 + 0.55 * n)
        ax, bx, cx = fig.subplots(3, 1, gridspec_kw={"height_ratios": [1, 1, 1]})
        rows = list(reversed(pace_rows[:top]))
        ax.barh(
            [f"{r['hospital_name']}·{INSURANCE_SHORT.get(r['insurance_type'], r['insurance_type'])}" for r in rows],
            [float(r["pace"]) for r in rows],
            color=[COLORS.get(r["alert_level"], COLORS["grey"]) for r in rows],
        )
        ax.axvline(1.0, color=COLORS["amber"], lw=0.8, ls="--")
        ax.axvline(1.1, color=COLORS["red"], lw=0.8, ls="--")
        ax.set_title("预算消耗进度比（消耗率 ÷ 时间进度）")
        rows = list(reversed(deduction_rows[:top]))
        bx.barh([r["hospital_name"] for r in rows], [float(r["deduction_amount"]) for r in rows], color=COLORS["blue"])
        bx.set_title("本月审核扣除金额（元）")
        rows = list(reversed(vbp_rows[:top]))
        cx.barh(
            [r["hospital_name"] for r in rows],
            [float(r["avg_completion_rate"] or 0) for r in rows],
            color=[COLORS["red"] if r["behind"] else COLORS["green"] for r in rows],
        )
        _pct_axis(cx, "x")
        cx.set_title("集采约定采购量平均完成率（红色：有滞后产品组）")
        for a in (ax, bx, cx):
            a.grid(axis="x", alpha=0.3)

    return _png(build)
