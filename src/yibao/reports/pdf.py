"""PDF summaries: HTML + CSS rendered by WeasyPrint, charts as inline PNG.

Chinese text uses Noto Sans CJK SC (Debian package fonts-noto-cjk), embedded as a subset, so
the text is extractable (pdftotext) and renders everywhere. Output is deterministic: WeasyPrint
writes no creation date unless asked, font subset tags are content hashes, and the file
identifier is derived from the document's name.
"""

from __future__ import annotations

import base64
import hashlib
import re
from html import escape
from pathlib import Path

from . import city
from .charts import CJK_FAMILY, budget_chart, city_charts
from .data import HospitalMonth, MonthData
from .labels import (
    ALERT_LEVEL,
    AUDIT_RULE_TYPE,
    BUREAU,
    INSURANCE_SHORT,
    NO_FINDINGS,
    SETTLEMENT_ITEMS,
    SUBJECT_TYPE,
    SUSPICIOUS_NOTE,
    insurance_label,
    month_label,
    num4,
    pct,
    qty,
    ratio,
    rule_type_label,
    severity_label,
    yuan,
)
from .workbook import year_end_rows

_NUMERIC = re.compile(r"^-?¥?-?[0-9][0-9,.]*%?$|^—$")

CSS = f"""
@page {{
  size: A4; margin: 16mm 14mm 16mm 14mm;
  @top-left {{ content: "{BUREAU}"; font-size: 8pt; color: #777; }}
  @top-right {{ content: string(doctitle); font-size: 8pt; color: #777; }}
  @bottom-center {{ content: "第 " counter(page) " 页，共 " counter(pages) " 页"; font-size: 8pt; color: #777; }}
}}
html {{ font-family: "{CJK_FAMILY}", sans-serif; font-size: 9.5pt; color: #1b1b1b; }}
h1 {{ font-size: 16pt; margin: 0 0 2mm 0; color: #1F4E79; string-set: doctitle content(); }}
h2 {{ font-size: 12pt; margin: 5mm 0 2mm 0; color: #1F4E79; border-bottom: 1px solid #B7C3D0; }}
p.meta {{ color: #555; margin: 0 0 3mm 0; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 2mm; font-size: 8.5pt; }}
th, td {{ border: 0.5pt solid #B7C3D0; padding: 1.2mm 2mm; }}
th {{ background: #DDE7F3; font-weight: bold; }}
td.n {{ text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }}
tr {{ break-inside: avoid; }}
h2 {{ break-after: avoid; }}
td {{ white-space: nowrap; }}
td:first-child {{ white-space: normal; min-width: 16mm; }}
tr.total td {{ font-weight: bold; background: #F2F2F2; }}
td.red {{ color: #9C0006; background: #FADBD8; }}
.cols {{ display: flex; gap: 4mm; }}
.cols > div {{ flex: 1; }}
img.chart {{ width: 100%; }}
.note {{ color: #777; font-size: 8pt; }}
p.caption {{ font-weight: bold; color: #1F4E79; margin: 1mm 0 0 0; }}
section.type {{ break-inside: avoid; }}
table.wide {{ font-size: 7.5pt; }}
table.wide th, table.wide td {{ padding: 1mm 1.2mm; }}
td.code {{ white-space: normal; word-break: break-all; text-align: left; }}
"""
# The citywide overview prints eight money columns of citywide size (ten-billion yuan year-to-date
# totals): A4 landscape, so that every column stays on the page.
LANDSCAPE = """
@page { size: A4 landscape; }
img.chart { width: auto; max-width: 100%; max-height: 165mm; display: block; margin: 0 auto; }
"""


def _html(title: str, body: str, *, landscape: bool = False) -> str:
    css = CSS + (LANDSCAPE if landscape else "")
    return (
        '<!DOCTYPE html><html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{escape(title)}</title>"
        f'<meta name="author" content="{BUREAU}"><meta name="generator" content="yibao.reports">'
        f"<style>{css}</style></head><body>{body}</body></html>"
    )


def _img(png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img class="chart" src="data:image/png;base64,{data}">'


def _table(headers: list[str], rows: list[list], total: list | None = None, css_class: str | None = None) -> str:
    def cells(values, tag="td"):
        out = []
        for v in values:
            cls = ""
            if isinstance(v, tuple):  # (text, css class)
                v, cls = v
            numeric = bool(_NUMERIC.match(v))
            classes = " ".join(c for c in ("n" if numeric and tag == "td" else "", cls) if c)
            attr = f' class="{classes}"' if classes else ""
            out.append(f"<{tag}{attr}>{escape(v)}</{tag}>")
        return "".join(out)

    body = "".join(f"<tr>{cells(r)}</tr>" for r in rows)
    if total:
        body += f'<tr class="total">{cells(total)}</tr>'
    attr = f' class="{css_class}"' if css_class else ""
    return f"<table{attr}><thead><tr>{cells(headers, 'th')}</tr></thead><tbody>{body}</tbody></table>"


# WeasyPrint logs each rendering step ("Step 1 - Fetching and parsing HTML" …) at INFO, and fontTools
# logs font subsetting at INFO: a dozen lines per PDF in the render task's log. Warnings still show.
QUIET_LOGGERS = ("weasyprint.progress", "fontTools")


def write_pdf(html: str, path: Path) -> int:
    """Render; returns the page count."""
    import logging

    for name in QUIET_LOGGERS:  # before the import: importing WeasyPrint parses its stylesheets
        logging.getLogger(name).setLevel(logging.WARNING)
    from weasyprint import HTML

    document = HTML(string=html).render()
    identifier = hashlib.sha256(path.name.encode("utf-8")).hexdigest()[:32].encode("ascii")
    document.write_pdf(path, pdf_identifier=identifier)
    return len(document.pages)


# ================================================================================================
def hospital_pdf(hm: HospitalMonth, path: Path) -> int:
    d = hm.data
    h = hm.hospital
    title = f"{h.name} 医保基金月度结算单"
    parts = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">定点医疗机构代码 {escape(h.code)}｜级别 {escape(h.level or "—")}｜结算月份 '
        f"{month_label(d.month)}｜数据截至 {d.cutoff.isoformat()}"
        + ("（月份未结束）" if not d.is_complete else "")
        + f"｜出具单位 {BUREAU}</p>",
    ]
    for t in hm.insurance_types():
        m = hm.this_month(t)
        ytd = hm.year_to_date(t)
        rows = [[label, yuan(m[key]), yuan(ytd.get(key))] for label, key in SETTLEMENT_ITEMS]
        rows.append(["预算使用率（合理费用 ÷ 月度预算指标）", pct(ratio(m["reasonable_amount"], m["monthly_quota_amount"])),
                     pct(ratio(ytd.get("reasonable_amount"), ytd.get("monthly_quota_amount")))])
        c = hm.consumption_at_cutoff(t)
        level = c["alert_level"] if c else None
        budget_rows = [
            ["年度预算指标", yuan(c["annual_budget_amount"]) if c else "—"],
            ["本年累计申报（已消耗）", yuan(c["consumed_amount"]) if c else "—"],
            ["预算消耗率", pct(c["consumption_rate"]) if c else "—"],
            ["时间进度", pct(c["time_elapsed"]) if c else "—"],
            ["消耗进度比", num4(c["pace"]) if c else "—"],
            ["预计年末申报", yuan(c["projected_year_end_amount"]) if c else "—"],
            ["预警等级", (ALERT_LEVEL.get(level, level or "—"), "red" if level == "red" else "")],
        ]
        parts.append(f'<section class="type"><h2>{escape(insurance_label(t))}</h2>')
        parts.append(
            '<div class="cols"><div style="flex:1.5">'
            + _table(["本月结算", "本月", f"本年累计（1–{d.month.month}月）"], rows)
            + "</div><div>"
            + _table([f"预算消耗（截至 {(c['as_of_date'] if c else d.cutoff).isoformat()}）", "数值"], budget_rows)
            + "</div></div>"
        )
        parts.append(f'<p class="caption">预算消耗图：{escape(insurance_label(t))}</p>')
        parts.append(_img(budget_chart(d.month.year, {t: hm.consumption_series(t)}, {t: hm.months(t)})))
        parts.append("</section>")

    parts.append("<h2>审核扣除、集采与回款</h2>")
    deducted = [c for c in (hm.deduction_claims or []) if c["deduction_amount"] != 0]
    deduction_total = sum((r["deduction_amount"] for r in hm.settlement if r["settlement_month"] == d.month), 0)
    behind = [r for r in hm.compliance if r["compliance_status"] == "behind"]
    overview = [
        ["本月审核扣除", yuan(deduction_total)
         + (f"（{len(deducted)} 笔结算）" if hm.deduction_claims is not None else "")],
        ["集采协议产品组", f"{len(hm.compliance)} 个，其中进度滞后 {len(behind)} 个"],
        ["集采货款逾期未结清", f"{len(hm.supplier_overdue)} 笔"],
        ["高值耗材异常使用预警", f"{len(hm.alerts)} 条"],
    ]
    if hm.audit_findings is not None:
        v, s_ = hm.findings("violation"), hm.findings("suspicious")
        overview.append(["智能审核发现（按费用日期）",
                         f"违规 {len(v)} 条 {yuan(sum((f['flagged_amount'] for f in v), 0))}；"
                         f"可疑 {len(s_)} 条（不扣款）" if hm.audit_findings else NO_FINDINGS])
    parts.append(_table(["项目", "情况（明细见同名 Excel 结算单）"], overview))
    parts.append(_hospital_audit(hm))

    if d.is_year_end and hm.annual:
        parts.append(f"<h2>{d.month.year}年度 年终清算（结余留用／超支分担）</h2>")
        rows, total = year_end_rows(hm.annual)
        parts.append(_year_end_table(rows, total))
    return write_pdf(_html(f"{title} {month_label(d.month)}", "".join(parts)), path)


PDF_FINDINGS_LIMIT = 200  # per severity; the Excel statement lists every finding


def _finding_table(findings: list[dict]) -> str:
    shown = findings[:PDF_FINDINGS_LIMIT]
    rows = [[f["rule_id"], rule_type_label(f["rule_type"]),
             f["subject_id"] if f["subject_type"] == "fee_line"
             else f"{SUBJECT_TYPE.get(f['subject_type'], f['subject_type'])} {f['subject_id']}",
             f["visit_id"] or "—", (f["item_code"] or "—", "code"), f["charge_date"].isoformat() if f["charge_date"] else "—",
             qty(f["flagged_quantity"]), yuan(f["flagged_amount"])] for f in shown]
    total = ["小计", f"{len(findings)} 条", "", "", "", "", "", yuan(sum((f["flagged_amount"] for f in findings), 0))]
    html = _table(["规则编号", "规则类型", "费用明细号", "就诊流水号", "项目编码", "费用日期", "数量", "金额"], rows,
                  total, css_class="wide")
    if len(findings) > len(shown):
        html += (f'<p class="note">仅列前 {len(shown)} 条，另有 {len(findings) - len(shown)} 条，'
                 "完整明细见同名 Excel 结算单「扣除明细」。</p>")
    return html


def _hospital_audit(hm: HospitalMonth) -> str:
    """Smart audit of the month (R11–R22, by charge date): per rule type, then each finding;
    suspicious findings apart (never deducted)."""
    month = month_label(hm.data.month)
    parts = [f"<h2>智能审核发现（{month}，规则 R11–R22）</h2>"]
    if hm.audit_findings is None:
        parts.append('<p class="note">marts 暂无智能审核表（fct_audit_findings），未列示智能审核发现。</p>')
        return "".join(parts)
    if not hm.audit_findings:
        parts.append(f"<p>{NO_FINDINGS}。</p>")
        parts.append('<p class="note">未报送费用明细（fee_detail）的医院不做智能审核。</p>')
        return "".join(parts) + _exam_rates(hm)
    groups: dict[tuple[str, str], list[dict]] = {}
    for f in hm.audit_findings:
        groups.setdefault((f["rule_type"], f["severity"]), []).append(f)
    order = list(AUDIT_RULE_TYPE)
    keys = sorted(groups, key=lambda k: (order.index(k[0]) if k[0] in order else 99, k[0], k[1] != "violation"))
    parts.append(_table(
        ["规则类型", "性质", "条数", "金额", "处理"],
        [[rule_type_label(t), severity_label(sv), str(len(groups[t, sv])),
          yuan(sum((f["flagged_amount"] for f in groups[t, sv]), 0)),
          "计入不合理费用，按统筹支付占比折算扣除" if sv == "violation" else SUSPICIOUS_NOTE] for t, sv in keys],
    ))
    violations, suspicious = hm.findings("violation"), hm.findings("suspicious")
    parts.append("<h2>违规明细（扣款）</h2>")
    parts.append(_finding_table(violations) if violations else "<p>本月无违规发现。</p>")
    parts.append(f"<h2>可疑明细（{SUSPICIOUS_NOTE}）</h2>")
    parts.append(_finding_table(suspicious) if suspicious else "<p>本月无可疑发现。</p>")
    return "".join(parts) + _exam_rates(hm)


def _exam_rates(hm: HospitalMonth) -> str:
    """The hospital's R21 rows of the month (hospitals of level 二级 and above that send exam results)."""
    if not hm.exam_rates:
        return ""
    rows = [[r["exam_class"], str(r["examined_count"]), str(r["positive_count"]),
             (pct(r["positive_rate"]), "red" if r["is_alert"] else ""), pct(r["threshold_rate"]),
             ("预警", "red") if r["is_alert"] else "正常"] for r in hm.exam_rates]
    return ("<h2>大型检查阳性率（R21，预警：阳性率 ≤ 阈值）</h2>"
            + _table(["检查类别", "有结果的检查数", "阳性数", "阳性率", "阈值", "预警"], rows))


def _short(t: str | None) -> str:
    return f"{INSURANCE_SHORT.get(t, '险种')}（{t}）" if t else ""


def _year_end_table(rows: list[dict], total: dict) -> str:
    headers = ["险种", "年度预算指标", "全年合理费用", "结余(+)/超支(−)", "清算方式", "清算应得", "已按月拨付",
               "年终清算拨付"]

    def line(r):
        return [_short(r.get("insurance_type")) or r.get("insurance", ""), yuan(r["annual_budget_amount"]),
                yuan(r["reasonable_amount"]), yuan(r["balance_amount"]), r.get("method", ""),
                yuan(r["entitlement_amount"]), yuan(r["monthly_paid_amount"]), yuan(r["year_end_payment_amount"])]

    # eight columns on a portrait page: the compact style keeps a large hospital's figures inside it
    return _table(headers, [line(r) for r in rows], line({**total, "method": "", "insurance_type": None}),
                  css_class="wide")


# ================================================================================================
def bureau_pdf(d: MonthData, path: Path, top: int = 10) -> int:
    title = f"全市医保基金月度结算总览 {month_label(d.month)}"
    parts = [
        f"<h1>{escape(title)}</h1>",
        f'<p class="meta">{BUREAU}｜数据截至 {d.cutoff.isoformat()}｜定点医疗机构 {len(d.hospitals)} 家</p>',
    ]
    month_rows, ytd_rows = city.settlement_totals(d)
    headers = ["险种", "月度预算指标", "申报金额", "审核扣除", "合理费用", "拨付", "暂缓拨付", "谈判药品"]
    keys = ["monthly_quota_amount", "declared_amount", "deduction_amount", "reasonable_amount", "paid_amount",
            "deferred_amount", "negotiated_drug_amount"]

    def amount_rows(rows):
        body = [[_short(r["insurance_type"]) or "全市合计"] + [yuan(r[k]) for k in keys]
                for r in rows]
        return body[:-1], body[-1]

    parts.append("<h2>一、本月结算</h2>")
    parts.append(_table(headers, *amount_rows(month_rows)))
    parts.append(f"<h2>二、本年累计（1–{d.month.month}月）</h2>")
    parts.append(_table(headers, *amount_rows(ytd_rows)))
    parts.append(f"<h2>三、预算消耗（截至 {d.cutoff.isoformat()}）</h2>")
    cons = city.consumption_totals(d)
    parts.append(_table(
        ["险种", "年度预算指标", "本年累计申报", "预算消耗率", "时间进度", "红色预警", "黄色预警", "正常"],
        [[_short(r["insurance_type"]) or "全市合计", yuan(r["annual_budget_amount"]),
          yuan(r["consumed_amount"]), pct(r["consumption_rate"]), pct(r["time_elapsed"]), str(r["red"]),
          str(r["amber"]), str(r["green"])] for r in cons],
    ))

    pace = city.pace_ranking(d)
    deductions = city.deduction_ranking(d)
    vbp = [r for r in city.vbp_ranking(d) if r["groups"]]
    parts.append("<h2>四、医院排名图</h2>")
    parts.append(_img(city_charts(pace, deductions, vbp)))

    parts.append(f"<h2>五、预算消耗进度比排名（前 {top}）</h2>")
    parts.append(_table(
        ["排名", "医院", "险种", "预算消耗率", "时间进度", "进度比", "预警等级", "预计年末申报"],
        [[str(r["rank"]), r["hospital_name"], _short(r["insurance_type"]), pct(r["consumption_rate"]),
          pct(r["time_elapsed"]), num4(r["pace"]),
          (ALERT_LEVEL.get(r["alert_level"], r["alert_level"]), "red" if r["alert_level"] == "red" else ""),
          yuan(r["projected_year_end_amount"])] for r in pace[:top]],
    ))
    parts.append(f"<h2>六、审核扣除排名（前 {top}）</h2>")
    parts.append(_table(
        ["排名", "医院", "本月申报", "审核扣除", "扣除率"],
        [[str(r["rank"]), r["hospital_name"], yuan(r["declared_amount"]), yuan(r["deduction_amount"]),
          pct(r["deduction_rate"])] for r in deductions[:top]],
    ))
    parts.append(f"<h2>七、集采完成情况（滞后优先，前 {top}）</h2>")
    parts.append(_table(
        ["排名", "医院", "产品组", "已完成", "进度正常", "进度滞后", "平均完成率"],
        [[str(r["rank"]), r["hospital_name"], str(r["groups"]), str(r["completed"]), str(r["on_track"]),
          (str(r["behind"]), "red" if r["behind"] else ""), pct(r["avg_completion_rate"])] for r in vbp[:top]],
    ))
    parts.append(f"<h2>八、集采货款逾期与异常使用预警（前 {top}）</h2>")
    alerts = {r["hospital_code"]: r for r in city.alert_ranking(d)}
    parts.append(_table(
        ["排名", "医院", "逾期未结清笔数", "最长逾期工作日", "异常使用预警"],
        [[str(r["rank"]), r["hospital_name"], str(r["overdue_lines"]), str(r["max_overdue_workdays"]),
          str(alerts[r["hospital_code"]]["alerts"])] for r in city.supplier_ranking(d)[:top]],
    ))
    parts.append(_city_audit(d, top))
    if d.is_year_end:
        names = {h.code: h.name for h in d.hospitals}
        parts.append(f"<h2>十一、{d.month.year}年度 年终清算</h2>")
        rows, total = year_end_rows(d.annual, names)
        body = [[r["hospital_name"] or r["hospital_code"], _short(r["insurance_type"]), yuan(r["reasonable_amount"]),
                 yuan(r["balance_amount"]), r["method"], yuan(r["entitlement_amount"]),
                 yuan(r["year_end_payment_amount"])] for r in rows]
        parts.append(_table(
            ["医院", "险种", "全年合理费用", "结余(+)/超支(−)", "清算方式", "清算应得", "年终清算拨付"], body,
            ["全市合计", "", yuan(total["reasonable_amount"]), yuan(total["balance_amount"]), "",
             yuan(total["entitlement_amount"]), yuan(total["year_end_payment_amount"])],
        ))
    parts.append('<p class="note">完整排名与明细见同月 Excel 结算总览。</p>')
    return write_pdf(_html(title, "".join(parts), landscape=True), path)


def _city_audit(d: MonthData, top: int) -> str:
    """Sections 九 (hospitals by smart-audit findings) and 十 (exam positive rates, alerts first)."""
    ranking = city.audit_ranking(d)
    parts = [f"<h2>九、智能审核发现排名（按费用日期，违规金额由高到低，前 {top}）</h2>"]
    if ranking is None:
        parts.append('<p class="note">marts 暂无智能审核表（fct_audit_summary_monthly），未列示。</p>')
    elif not any(r["finding_count"] for r in ranking):
        parts.append(f"<p>{NO_FINDINGS}。</p>")
    else:
        parts.append(_table(
            ["排名", "医院", "违规条数", "违规金额", f"可疑条数（{SUSPICIOUS_NOTE}）", "可疑金额", "发现合计"],
            [[str(r["rank"]), r["hospital_name"], str(r["violation_count"]), yuan(r["violation_amount"]),
              str(r["suspicious_count"]), yuan(r["suspicious_amount"]), str(r["finding_count"])]
             for r in ranking[:top]],
            ["全市合计", "", str(sum(r["violation_count"] for r in ranking)),
             yuan(sum((r["violation_amount"] for r in ranking), 0)), str(sum(r["suspicious_count"] for r in ranking)),
             yuan(sum((r["suspicious_amount"] for r in ranking), 0)), str(sum(r["finding_count"] for r in ranking))],
        ))
        by_type = city.audit_by_rule_type(d) or []
        parts.append(_table(
            ["规则类型", "性质", "涉及医院数", "发现条数", "金额"],
            [[rule_type_label(g["rule_type"]), severity_label(g["severity"]), str(g["hospitals"]),
              str(g["finding_count"]), yuan(g["flagged_amount"])] for g in by_type],
        ))
    exams = city.exam_rate_ranking(d)
    alerts = [r for r in exams or [] if r["is_alert"]]
    limit = max(top, 2 * top if alerts else top)
    parts.append(f"<h2>十、大型检查阳性率（R21，预警：阳性率 ≤ 阈值；预警优先，前 {limit}）</h2>")
    if exams is None:
        parts.append('<p class="note">marts 暂无检查阳性率表（fct_exam_positive_rate_monthly），未列示。</p>')
    elif not exams:
        parts.append("<p>本月无检查阳性率数据。</p>")
    else:
        parts.append(f"<p>本月 {len({r['hospital_code'] for r in exams})} 家医院 {len(exams)} 项检查类别，"
                     f"预警 {len(alerts)} 项。</p>")
        parts.append(_table(
            ["排名", "医院", "检查类别", "有结果的检查数", "阳性数", "阳性率", "阈值", "预警"],
            [[str(r["rank"]), r["hospital_name"], r["exam_class"], str(r["examined_count"]), str(r["positive_count"]),
              (pct(r["positive_rate"]), "red" if r["is_alert"] else ""), pct(r["threshold_rate"]),
              ("预警", "red") if r["is_alert"] else "正常"] for r in exams[:limit]],
        ))
    return "".join(parts)
