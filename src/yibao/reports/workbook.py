"""Excel workbooks (XlsxWriter): one settlement statement per hospital, one citywide overview.

Deterministic by construction: XlsxWriter stamps zip members with a fixed 1980 date and the
document properties get a fixed creation date (the month's last day), so the same marts give the
same bytes. Codes are written as text; money as numbers with a ¥ format; nothing is a formula, so
any reader (openpyxl, BI tools) sees the values.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from pathlib import Path

from . import city
from .charts import CJK_FAMILY
from .data import HospitalMonth, MonthData
from .labels import (
    ALERT_LEVEL,
    ALERT_TYPE,
    BUREAU,
    COMPLIANCE_STATUS,
    INSURANCE_SHORT,
    MONTHLY_COLUMNS,
    NO_FINDINGS,
    PAYMENT_STATUS,
    SETTLEMENT_ITEMS,
    SUBJECT_TYPE,
    SUSPICIOUS_NOTE,
    insurance_label,
    month_label,
    ratio,
    rule_type_label,
    severity_label,
)

MONEY_FORMAT = "[$¥-804]#,##0.00;[Red]-[$¥-804]#,##0.00"
PRICE_FORMAT = "[$¥-804]#,##0.00##"  # unit prices carry up to 4 decimals
PCT_FORMAT = "0.00%"
RATE_FORMAT = "0.0000"
DATE_FORMAT = "yyyy-mm-dd"
DATETIME_FORMAT = "yyyy-mm-dd hh:mm:ss"
INT_FORMAT = "#,##0"

HEADER_ROW = 2  # list sheets: title (row 0), note (row 1), header (row 2), data from row 3


@dataclass(frozen=True)
class Col:
    header: str
    key: str
    kind: str = "text"  # text | money | price | pct | rate | date | datetime | qty | int | bool
    width: float | None = None


def _width(value) -> int:
    s = value if isinstance(value, str) else str(value)
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in s)


class Book:
    """An XlsxWriter workbook with the project's formats and value writers."""

    def __init__(self, path: Path, title: str, created: date):
        import xlsxwriter

        self.wb = xlsxwriter.Workbook(
            str(path),
            {
                "in_memory": True,
                "strings_to_numbers": False,
                "strings_to_formulas": False,
                "strings_to_urls": False,
                "default_format_properties": {"font_name": CJK_FAMILY, "font_size": 10},
            },
        )
        self.wb.set_properties(
            {
                "title": title,
                "author": BUREAU,
                "company": BUREAU,
                "manager": BUREAU,
                "comments": "由医保数据仓库 marts 生成",
                "created": datetime(created.year, created.month, created.day),
            }
        )
        self.rows: dict[str, int] = {}
        self.widths: dict[tuple[str, int], float] = {}  # (sheet, column) -> widest of the sheet's tables
        f = self.wb.add_format
        base = {"font_name": CJK_FAMILY, "font_size": 10, "valign": "vcenter"}
        cell = {**base, "border": 1, "border_color": "#B7C3D0"}
        self.fmt = {
            "title": f({**base, "bold": True, "font_size": 14}),
            "note": f({**base, "font_color": "#555555", "font_size": 9}),
            "section": f({**base, "bold": True, "font_size": 11, "font_color": "#1F4E79"}),
            "header": f({**cell, "bold": True, "bg_color": "#DDE7F3", "text_wrap": True, "align": "center"}),
            "text": f(cell),
            "money": f({**cell, "num_format": MONEY_FORMAT}),
            "price": f({**cell, "num_format": PRICE_FORMAT}),
            "pct": f({**cell, "num_format": PCT_FORMAT}),
            "rate": f({**cell, "num_format": RATE_FORMAT}),
            "date": f({**cell, "num_format": DATE_FORMAT, "align": "center"}),
            "datetime": f({**cell, "num_format": DATETIME_FORMAT, "align": "center"}),
            "qty": f({**cell, "num_format": "General"}),
            "int": f({**cell, "num_format": INT_FORMAT}),
            "bool": f({**cell, "align": "center"}),
        }
        for kind in list(self.fmt):
            if kind in ("title", "note", "section", "header"):
                continue
            props = {**cell, "bold": True, "bg_color": "#F2F2F2"}
            num = {"money": MONEY_FORMAT, "price": PRICE_FORMAT, "pct": PCT_FORMAT, "rate": RATE_FORMAT, "int": INT_FORMAT}.get(kind)
            if num:
                props["num_format"] = num
            self.fmt[f"{kind}_total"] = f(props)
            self.fmt[f"{kind}_alert"] = f({**props, "bold": False, "bg_color": "#FADBD8", "font_color": "#9C0006",
                                           **({"num_format": num} if num else {})})
            self.fmt[f"{kind}_muted"] = f({**cell, "font_color": "#7F7F7F",
                                           **({"num_format": num} if num else {})})

    def close(self) -> None:
        self.wb.close()

    # -- cells -------------------------------------------------------------------------------
    def put(self, ws, row: int, col: int, value, kind: str = "text", style: str = "") -> None:
        fmt = self.fmt[f"{kind}_{style}" if style else kind]
        if value is None:
            ws.write_blank(row, col, None, fmt)
        elif isinstance(value, bool):
            ws.write_string(row, col, "是" if value else "否", fmt)
        elif isinstance(value, datetime):
            ws.write_datetime(row, col, value, fmt)
        elif isinstance(value, date):
            ws.write_datetime(row, col, datetime(value.year, value.month, value.day), fmt)
        elif isinstance(value, (int, float, Decimal)):
            ws.write_number(row, col, float(value), fmt)
        else:
            ws.write_string(row, col, str(value), fmt)

    def sheet(self, name: str, title: str, note: str, *, landscape: bool = True):
        ws = self.wb.add_worksheet(name)
        ws.hide_gridlines(2)
        ws.set_paper(9)  # A4
        if landscape:
            ws.set_landscape()
        ws.fit_to_pages(1, 0)
        ws.set_margins(left=0.4, right=0.4, top=0.6, bottom=0.6)
        ws.center_horizontally()
        ws.set_header(f"&L&9{BUREAU}&R&9{name}")
        ws.set_footer("&C&9第 &P 页，共 &N 页")
        ws.set_row(0, 24)
        ws.write_string(0, 0, title, self.fmt["title"])
        ws.write_string(1, 0, note, self.fmt["note"])
        self.rows[name] = 0
        return ws

    def table(self, ws, name: str, cols: list[Col], rows: list[dict], *, start: int = HEADER_ROW,
              total: dict | None = None, freeze: bool = True, style_of=None, count: bool = True) -> int:
        """Header at ``start``, rows below, optional bold total row. Returns the next free row."""
        widths = [max(_width(c.header) + 2, 8) for c in cols]
        ws.set_row(start, 30)
        for j, c in enumerate(cols):
            ws.write_string(start, j, c.header, self.fmt["header"])
        r = start + 1
        for row in rows:
            style = style_of(row) if style_of else {}
            for j, c in enumerate(cols):
                value = row.get(c.key)
                self.put(ws, r, j, value, c.kind, style.get(c.key, style.get("*", "")))
                if value is not None and c.kind in ("text", "bool"):
                    widths[j] = max(widths[j], _width(value) + 2)
                elif c.kind in ("money", "price") and value is not None:
                    widths[j] = max(widths[j], len(f"{abs(Decimal(value)):,.2f}") + 5)
            r += 1
        if total is not None:
            for j, c in enumerate(cols):
                self.put(ws, r, j, total.get(c.key), c.kind, "total")
            r += 1
        for j, c in enumerate(cols):
            w = c.width or min(max(widths[j], 10 if c.kind in ("date", "money", "price") else 6), 48)
            if c.kind == "datetime":
                w = max(w, 20)
            w = self.widths[(name, j)] = max(w, self.widths.get((name, j), 0))  # several tables on one sheet
            ws.set_column(j, j, w)
        if freeze:
            ws.freeze_panes(start + 1, 0)
            ws.repeat_rows(start)
            ws.autofilter(start, 0, max(start, r - 1 - (total is not None)), len(cols) - 1)
        if count:
            self.rows[name] += len(rows)
        return r


# ================================================================================================
# Hospital statement
# ================================================================================================
def _summary_sheet_name(t: str) -> str:
    return f"汇总_{INSURANCE_SHORT.get(t, '险种')}{t}"


def hospital_workbook(hm: HospitalMonth, path: Path) -> dict[str, int]:
    d = hm.data
    h = hm.hospital
    book = Book(path, f"{h.name} {month_label(d.month)} 医保基金结算单", d.month_end)
    head = f"定点医疗机构代码 {h.code}｜级别 {h.level or '—'}｜结算月份 {month_label(d.month)}｜数据截至 {d.cutoff.isoformat()}"
    if not d.is_complete:
        head += "（月份未结束，数据为截至日口径）"
    for t in hm.insurance_types():
        _hospital_summary(book, hm, t, head)
    _hospital_deductions(book, hm, head)
    _hospital_vbp(book, hm, head)
    _hospital_supplier(book, hm, head)
    _hospital_alerts(book, hm, head)
    if hm.exam_rates:
        _hospital_exams(book, hm, head)
    if d.is_year_end and hm.annual:
        _year_end(book, hm.annual, f"{h.name} {d.month.year}年度 医保基金年终清算", head, with_hospital=False)
    book.close()
    return book.rows


def _hospital_summary(book: Book, hm: HospitalMonth, t: str, head: str) -> None:
    d = hm.data
    name = _summary_sheet_name(t)
    ws = book.sheet(name, f"{hm.hospital.name} 医保基金月度结算单 — {insurance_label(t)}", head, landscape=False)
    month = hm.this_month(t)
    ytd = hm.year_to_date(t)
    n = d.month.month

    row = 3
    ws.write_string(row, 0, "一、本月结算", book.fmt["section"])
    row += 1
    for j, text in enumerate(["项目", "本月", f"本年累计（1–{n}月）"]):
        ws.write_string(row, j, text, book.fmt["header"])
    row += 1
    for label, key in SETTLEMENT_ITEMS:
        book.put(ws, row, 0, label)
        book.put(ws, row, 1, month[key], "money")
        book.put(ws, row, 2, ytd.get(key), "money")
        row += 1
    book.put(ws, row, 0, "预算使用率（合理费用 ÷ 月度预算指标）")
    book.put(ws, row, 1, ratio(month["reasonable_amount"], month["monthly_quota_amount"]), "pct")
    book.put(ws, row, 2, ratio(ytd.get("reasonable_amount"), ytd.get("monthly_quota_amount")), "pct")
    book.rows[name] += len(SETTLEMENT_ITEMS) + 1
    row += 2

    c = hm.consumption_at_cutoff(t)
    ws.write_string(row, 0, f"二、预算消耗（截至 {c['as_of_date'].isoformat() if c else d.cutoff.isoformat()}）",
                    book.fmt["section"])
    row += 1
    for j, text in enumerate(["项目", "数值"]):
        ws.write_string(row, j, text, book.fmt["header"])
    row += 1
    items = [
        ("年度预算指标", "annual_budget_amount", "money"),
        ("本年累计申报（已消耗）", "consumed_amount", "money"),
        ("预算消耗率", "consumption_rate", "pct"),
        ("时间进度", "time_elapsed", "pct"),
        ("消耗进度比（消耗率 ÷ 时间进度）", "pace", "rate"),
        ("预计年末申报", "projected_year_end_amount", "money"),
    ]
    for label, key, kind in items:
        book.put(ws, row, 0, label)
        book.put(ws, row, 1, c[key] if c else None, kind)
        row += 1
    level = c["alert_level"] if c else None
    book.put(ws, row, 0, "预警等级")
    book.put(ws, row, 1, ALERT_LEVEL.get(level, level), "text", "alert" if level == "red" else "")
    book.rows[name] += len(items) + 1
    row += 2

    ws.write_string(row, 0, "三、本年逐月结算", book.fmt["section"])
    row += 1
    cols = [Col("月份", "month_label")] + [Col(hdr, key, "money") for hdr, key in MONTHLY_COLUMNS]
    months = [{**r, "month_label": month_label(r["settlement_month"])} for r in hm.months(t)]
    total = {"month_label": "合计", **ytd}
    book.table(ws, name, cols, months, start=row, total=total, freeze=False)
    ws.set_column(0, 0, 38)
    ws.set_column(1, len(MONTHLY_COLUMNS), 17)
    ws.freeze_panes(2, 0)
    ws.repeat_rows(0, 1)
    ws.print_area(0, 0, row + len(months) + 1, len(MONTHLY_COLUMNS))


def _rule_of(line: dict) -> str:
    if line.get("is_untraceable"):
        return "无可追溯采购（R1）"
    markup = abs(line["markup_excess_amount"] or 0)
    standard = abs(line["standard_excess_amount"] or 0)
    if markup and markup >= standard:
        return "零差率：收费高于采购价（R1）"
    if standard:
        return "超医保支付标准（R3）"
    return "—"


DEDUCTION_COLS = [
    Col("结算流水号", "settlement_id"),
    Col("就诊流水号", "visit_id"),
    Col("险种", "insurance_type"),
    Col("结算时间", "settled_at", "datetime"),
    Col("医疗费用总额", "total_amount", "money"),
    Col("统筹基金支付", "fund_paid_amount", "money"),
    Col("使用明细号", "usage_id"),
    Col("医保耗材代码", "consumable_code", "text", 27),
    Col("耗材名称", "generic_name"),
    Col("使用时间", "used_at", "datetime"),
    Col("数量", "quantity", "qty"),
    Col("收费单价", "charge_unit_price", "price"),
    Col("参考价（采购价）", "reference_price", "price"),
    Col("支付标准", "payment_standard_price", "price"),
    Col("零差率超额", "markup_excess_amount", "money"),
    Col("超支付标准额", "standard_excess_amount", "money"),
    Col("不合理费用", "unreasonable_excess_amount", "money"),
    Col("适用规则", "rule"),
    Col("扣除金额", "deduction_amount", "money"),
]
# when fct_settlement_deduction carries the visit's smart-audit violation amount (R6 extended)
AUDIT_DEDUCTION_COL = Col("智能审核违规金额", "audit_violation_amount", "money")


def deduction_rows(hm: HospitalMonth) -> tuple[list[dict], dict]:
    """Claim rows each followed by their usage lines (``is_line``), and the total row."""
    names = hm.data.consumable_names
    rows: list[dict] = []

    def line_row(u: dict, claim: dict | None) -> dict:
        return {
            **u,
            "is_line": True,
            "settlement_id": claim["settlement_id"] if claim else None,
            "insurance_type": claim["insurance_type"] if claim else None,
            "generic_name": names.get(u["consumable_code"]),
            "rule": _rule_of(u),
        }

    total = {"settlement_id": "合计", "unreasonable_excess_amount": Decimal("0.00"), "deduction_amount": Decimal("0.00")}
    if hm.deduction_claims is not None:
        for claim in hm.deduction_claims:
            rule = "按统筹支付占比折算扣除（R6）"
            if claim.get("audit_violation_amount"):
                rule = "（耗材超额 + 智能审核违规）按统筹支付占比折算扣除（R6）"
            rows.append({**claim, "is_line": False, "rule": rule})
            rows.extend(line_row(u, claim) for u in hm.lines_of(claim))
            total["unreasonable_excess_amount"] += claim["unreasonable_excess_amount"]
            total["deduction_amount"] += claim["deduction_amount"]
    else:
        for u in hm.deduction_lines:
            rows.append(line_row(u, None))
            total["unreasonable_excess_amount"] += u["unreasonable_excess_amount"]
        total["deduction_amount"] = sum(
            (r["deduction_amount"] for r in hm.settlement if r["settlement_month"] == hm.data.month), Decimal("0.00")
        )
    return rows, total


def _hospital_deductions(book: Book, hm: HospitalMonth, head: str) -> None:
    name = "扣除明细"
    note = head
    if hm.deduction_claims is None:
        note += "｜marts 暂无结算归属表（fct_settlement_deduction），按使用月份列示超额明细；合计扣除取自月度结算"
    ws = book.sheet(name, f"{hm.hospital.name} {month_label(hm.data.month)} 不合理费用审核扣除明细", note)
    rows, total = deduction_rows(hm)
    cols = DEDUCTION_COLS
    if any(c.get("audit_violation_amount") is not None for c in hm.deduction_claims or []):
        cols = DEDUCTION_COLS[:-2] + [AUDIT_DEDUCTION_COL] + DEDUCTION_COLS[-2:]
        total["audit_violation_amount"] = sum((c["audit_violation_amount"] or Decimal(0) for c in hm.deduction_claims),
                                              Decimal("0.00"))

    def style_of(r):
        return {"*": "muted", "usage_id": "", "consumable_code": "", "generic_name": "", "used_at": "", "quantity": "",
                "charge_unit_price": "", "reference_price": "", "payment_standard_price": "",
                "markup_excess_amount": "", "standard_excess_amount": "", "unreasonable_excess_amount": "",
                "rule": ""} if r["is_line"] and hm.deduction_claims is not None else {}

    end = book.table(ws, name, cols, rows, total=total, style_of=style_of)
    book.rows[name] = len(rows)
    if hm.deduction_claims is not None:
        r = HEADER_ROW + 1
        for row in rows:
            if row["is_line"]:
                ws.set_row(r, None, None, {"level": 1})
            r += 1
        ws.outline_settings(True, False, True, False)
    book.rows[name] += _audit_findings(book, ws, name, hm, end + 1)


AUDIT_COLS = [
    Col("规则编号", "rule_id"),
    Col("规则类型", "rule_type_label"),
    Col("性质", "severity_label"),
    Col("审核对象", "subject_label"),
    Col("对象编号（费用明细号/结算流水号）", "subject_id"),
    Col("就诊流水号", "visit_id"),
    Col("医保目录编码", "item_code", "text", 24),
    Col("项目名称", "item_name"),
    Col("费用日期", "charge_date", "date"),
    Col("数量", "flagged_quantity", "qty"),
    Col("金额", "flagged_amount", "money"),
    Col("跨院", "is_cross_hospital", "bool"),
    Col("本月扣款结算", "settlement_id"),
]


def audit_rows(findings: list[dict], claims: list[dict] | None = None) -> list[dict]:
    """Findings with their labels and, for violations, the settlement of this month's statement whose
    deduction includes them (the visit's effective settlement, when it is in this month)."""
    settlement_of = {c["visit_id"]: c["settlement_id"] for c in claims or []}
    return [{**f, "rule_type_label": rule_type_label(f["rule_type"]), "severity_label": severity_label(f["severity"]),
             "subject_label": SUBJECT_TYPE.get(f["subject_type"], f["subject_type"]),
             "settlement_id": settlement_of.get(f["visit_id"]) if f["severity"] == "violation" else None}
            for f in findings]


def _audit_findings(book: Book, ws, name: str, hm: HospitalMonth, row: int) -> int:
    """The month's smart-audit findings (R11–R22, by charge date) below the consumable excesses:
    violations (deducted) and, apart, suspicious findings (listed for review, never deducted).
    Returns the number of finding rows written."""
    month = month_label(hm.data.month)
    if hm.audit_findings is None:
        ws.write_string(row, 0, "智能审核（R11–R22）", book.fmt["section"])
        ws.write_string(row + 1, 0, "marts 暂无智能审核表（fct_audit_findings），未列示智能审核发现", book.fmt["note"])
        return 0
    if not hm.audit_findings:
        ws.write_string(row, 0, f"智能审核（R11–R22）：{NO_FINDINGS}", book.fmt["section"])
        ws.write_string(row + 1, 0, "未报送费用明细（fee_detail）的医院不做智能审核", book.fmt["note"])
        return 0
    written = 0
    sections = [
        ("violation", f"智能审核违规明细（{month}，按费用日期；违规金额计入就诊的不合理费用，随有效结算按统筹支付占比折算扣除）",
         "本月无违规发现"),
        ("suspicious", f"智能审核可疑明细（{month}，按费用日期）：{SUSPICIOUS_NOTE}", "本月无可疑发现"),
    ]
    for severity, title, empty in sections:
        findings = hm.findings(severity)
        ws.write_string(row, 0, title, book.fmt["section"])
        if not findings:
            ws.write_string(row + 1, 0, empty, book.fmt["note"])
            row += 3
            continue
        total = {"rule_id": "小计", "subject_id": f"{len(findings)} 条",
                 "flagged_amount": sum((f["flagged_amount"] or Decimal(0) for f in findings), Decimal("0.00"))}
        cols = AUDIT_COLS if severity == "violation" else AUDIT_COLS[:-1]
        row = book.table(ws, name, cols, audit_rows(findings, hm.deduction_claims), start=row + 1, total=total,
                         freeze=False, count=False) + 1
        written += len(findings)
    return written


def _hospital_vbp(book: Book, hm: HospitalMonth, head: str) -> None:
    name = "集采完成进度"
    as_of = hm.data.compliance_as_of
    ws = book.sheet(name, f"{hm.hospital.name} 集中带量采购约定采购量完成进度",
                    f"{head}｜进度数据截至 {as_of.isoformat() if as_of else '—'}")
    cols = [
        Col("集采批次", "batch_id"),
        Col("产品组", "product_group"),
        Col("约定采购量", "agreed_qty", "qty"),
        Col("已采购中选产品量", "purchased_selected_qty", "qty"),
        Col("完成率", "completion_rate", "pct"),
        Col("时间进度", "expected_progress", "pct"),
        Col("完成状态", "status"),
        Col("中选产品使用占比", "selected_share", "pct"),
        Col("价格违规笔数", "price_violation_count", "int"),
    ]
    rows = [{**r, "status": COMPLIANCE_STATUS.get(r["compliance_status"], r["compliance_status"])} for r in hm.compliance]
    book.table(ws, name, cols, rows,
               style_of=lambda r: {"status": "alert", "completion_rate": "alert"} if r["compliance_status"] == "behind" else {})


SUPPLIER_COLS = [
    Col("采购明细号", "purchase_line_id"),
    Col("配送企业统一社会信用代码", "supplier_uscc"),
    Col("到货确认日期", "delivery_date", "date"),
    Col("应付日期（第30个工作日）", "due_date", "date"),
    Col("金额", "amount", "money"),
    Col("回款日期", "paid_date", "date"),
    Col("当前状态", "status"),
    Col("逾期工作日", "overdue_workdays", "int"),
]


def _hospital_supplier(book: Book, hm: HospitalMonth, head: str) -> None:
    name = "供应商回款逾期"
    ws = book.sheet(name, f"{hm.hospital.name} 集采产品货款逾期未结清明细（截至 {hm.data.cutoff.isoformat()}）", head)
    rows = [{**r, "status": PAYMENT_STATUS.get(r["payment_status"], r["payment_status"])} for r in hm.supplier_overdue]
    book.table(ws, name, SUPPLIER_COLS, rows)


ALERT_COLS = [
    Col("预警类型", "type_label"),
    Col("对象（医师代码/手术记录号）", "subject_id"),
    Col("月份", "period_month", "date"),
    Col("指标值", "metric_value", "rate"),
    Col("阈值", "threshold_value", "rate"),
]


def _alert_rows(alerts: list[dict]) -> list[dict]:
    return [{**a, "type_label": ALERT_TYPE.get(a["alert_type"], a["alert_type"])} for a in alerts]


def _hospital_alerts(book: Book, hm: HospitalMonth, head: str) -> None:
    name = "异常使用预警"
    ws = book.sheet(name, f"{hm.hospital.name} {month_label(hm.data.month)} 高值耗材异常使用预警", head)
    book.table(ws, name, ALERT_COLS, _alert_rows(hm.alerts))


def _hospital_exams(book: Book, hm: HospitalMonth, head: str) -> None:
    """The hospital's R21 rows of the month (as in the PDF; only hospitals of level 二级 and above
    that send exam results have them, so the sheet is left out for the others)."""
    name = "检查阳性率"
    ws = book.sheet(name, f"{hm.hospital.name} {month_label(hm.data.month)} 大型检查阳性率（R21；预警：阳性率 ≤ 阈值）",
                    head)
    rows = sorted(hm.exam_rates, key=lambda r: (not r["is_alert"], r["exam_class"]))
    book.table(ws, name, EXAM_COLS, exam_rows(rows), style_of=exam_style)


def year_end_rows(annual: list[dict], hospitals: dict | None = None) -> tuple[list[dict], dict]:
    rows = []
    total = {"insurance": "合计"}
    for a in annual:
        balance = city.year_end_balance(a)
        rows.append(
            {
                **a,
                "hospital_name": (hospitals or {}).get(a["hospital_code"]),
                "insurance": insurance_label(a["insurance_type"]),
                "balance_amount": balance,
                "method": "结余留用" if balance >= 0 else "超支分担",
            }
        )
        for key in ("annual_budget_amount", "reasonable_amount", "balance_amount", "entitlement_amount",
                    "monthly_paid_amount", "year_end_payment_amount"):
            total[key] = total.get(key, Decimal("0.00")) + rows[-1][key]
    return rows, total


def _year_end(book: Book, annual: list[dict], title: str, head: str, *, with_hospital: bool,
              hospitals: dict | None = None) -> None:
    name = "年终清算"
    ws = book.sheet(name, title, head + "｜结余为正、超支为负；年终清算拨付为负表示应扣回")
    cols = ([Col("医院代码", "hospital_code"), Col("医院名称", "hospital_name")] if with_hospital else []) + [
        Col("险种", "insurance"),
        Col("年度预算指标", "annual_budget_amount", "money"),
        Col("全年合理费用", "reasonable_amount", "money"),
        Col("结余（+）/超支（−）", "balance_amount", "money"),
        Col("清算方式", "method"),
        Col("年终清算应得", "entitlement_amount", "money"),
        Col("已按月拨付", "monthly_paid_amount", "money"),
        Col("年终清算拨付", "year_end_payment_amount", "money"),
    ]
    rows, total = year_end_rows(annual, hospitals)
    if with_hospital:
        total = {**total, "hospital_code": "合计", "insurance": None}
    book.table(ws, name, cols, rows, total=total)


# ================================================================================================
# Bureau overview
# ================================================================================================
def bureau_workbook(d: MonthData, path: Path) -> dict[str, int]:
    book = Book(path, f"全市 {month_label(d.month)} 医保基金结算总览", d.month_end)
    head = f"{BUREAU}｜结算月份 {month_label(d.month)}｜数据截至 {d.cutoff.isoformat()}｜医院数 {len(d.hospitals)}"
    names = {h.code: h.name for h in d.hospitals}
    _city_summary(book, d, head)

    hosp = [Col("排名", "rank", "int"), Col("医院代码", "hospital_code"), Col("医院名称", "hospital_name"),
            Col("级别", "level"), Col("区县", "county_code")]

    ws = book.sheet("预算进度排名", f"全市 {month_label(d.month)} 总额预算消耗进度排名（进度比由高到低）", head)
    rows = [{**r, "insurance": insurance_label(r["insurance_type"]),
             "alert": ALERT_LEVEL.get(r["alert_level"], r["alert_level"])} for r in city.pace_ranking(d)]
    book.table(ws, "预算进度排名", hosp + [
        Col("险种", "insurance"), Col("年度预算指标", "annual_budget_amount", "money"),
        Col("本年累计申报", "consumed_amount", "money"), Col("预算消耗率", "consumption_rate", "pct"),
        Col("时间进度", "time_elapsed", "pct"), Col("消耗进度比", "pace", "rate"),
        Col("预计年末申报", "projected_year_end_amount", "money"), Col("预警等级", "alert"),
        Col("本月申报", "declared_amount", "money"), Col("本月拨付", "paid_amount", "money"),
        Col("暂缓拨付", "deferred_amount", "money"),
    ], rows, style_of=lambda r: {"alert": "alert", "pace": "alert"} if r["alert_level"] == "red" else {})

    ws = book.sheet("审核扣除排名", f"全市 {month_label(d.month)} 不合理费用审核扣除排名", head)
    rows = city.deduction_ranking(d)
    book.table(ws, "审核扣除排名", hosp + [
        Col("本月申报", "declared_amount", "money"), Col("审核扣除", "deduction_amount", "money"),
        Col("扣除率", "deduction_rate", "pct"), Col("扣除结算笔数", "deducted_claims", "int"),
    ], rows, total={"hospital_code": "合计", "declared_amount": sum((r["declared_amount"] for r in rows), Decimal(0)),
                    "deduction_amount": sum((r["deduction_amount"] for r in rows), Decimal(0))})

    ws = book.sheet("集采完成排名", f"全市集采约定采购量完成情况排名（进度数据截至 "
                    f"{d.compliance_as_of.isoformat() if d.compliance_as_of else '—'}）", head)
    book.table(ws, "集采完成排名", hosp + [
        Col("协议产品组数", "groups", "int"), Col("已完成", "completed", "int"), Col("进度正常", "on_track", "int"),
        Col("进度滞后", "behind", "int"), Col("平均完成率", "avg_completion_rate", "pct"),
        Col("最低完成率", "min_completion_rate", "pct"), Col("价格违规笔数", "price_violation_count", "int"),
    ], city.vbp_ranking(d), style_of=lambda r: {"behind": "alert"} if r["behind"] else {})

    ws = book.sheet("回款逾期排名", f"全市集采货款逾期未结清排名（截至 {d.cutoff.isoformat()}）", head)
    book.table(ws, "回款逾期排名", hosp + [
        Col("逾期未结清笔数", "overdue_lines", "int"), Col("逾期金额", "overdue_amount", "money"),
        Col("涉及配送企业数", "suppliers", "int"),
        Col("最长逾期工作日", "max_overdue_workdays", "int"), Col("逾期工作日合计", "sum_overdue_workdays", "int"),
    ], city.supplier_ranking(d))

    ws = book.sheet("逾期明细", f"全市集采货款逾期未结清明细（截至 {d.cutoff.isoformat()}）", head)
    rows = [{**r, "hospital_name": names.get(r["hospital_code"]),
             "status": PAYMENT_STATUS.get(r["payment_status"], r["payment_status"])} for r in d.supplier_overdue]
    book.table(ws, "逾期明细", [Col("医院代码", "hospital_code"), Col("医院名称", "hospital_name")] + SUPPLIER_COLS, rows)

    ws = book.sheet("异常预警排名", f"全市 {month_label(d.month)} 高值耗材异常使用预警排名", head)
    book.table(ws, "异常预警排名", hosp + [
        Col("单一品牌集中使用", "single_brand", "int"), Col("单台手术耗材费用异常", "surgery_cost", "int"),
        Col("预警合计", "alerts", "int"),
    ], city.alert_ranking(d))

    ws = book.sheet("异常预警明细", f"全市 {month_label(d.month)} 高值耗材异常使用预警明细", head)
    rows = [{**a, "hospital_name": names.get(a["hospital_code"])} for a in _alert_rows(d.alerts)]
    book.table(ws, "异常预警明细", [Col("医院代码", "hospital_code"), Col("医院名称", "hospital_name")] + ALERT_COLS, rows)

    _city_audit(book, d, head, hosp)

    if d.is_year_end:
        _year_end(book, d.annual, f"全市 {d.month.year}年度 医保基金年终清算", head, with_hospital=True,
                  hospitals=names)
    book.close()
    return book.rows


CITY_AMOUNT_COLS = [Col(hdr, key, "money") for hdr, key in MONTHLY_COLUMNS]

MISSING_AUDIT_MARTS = "marts 暂无智能审核表（fct_audit_summary_monthly / fct_exam_positive_rate_monthly）"


def _city_audit(book: Book, d: MonthData, head: str, hosp: list[Col]) -> None:
    """Smart audit (R11–R22): hospitals ranked by findings, findings by rule type, exam positive rates."""
    month = month_label(d.month)
    name = "智能审核排名"
    ranking = city.audit_ranking(d)
    note = f"{head}｜按费用日期所属月份；违规计入扣款，可疑（{SUSPICIOUS_NOTE}）"
    ws = book.sheet(name, f"全市 {month} 智能审核发现排名（违规金额由高到低）",
                    note if ranking is not None else f"{head}｜{MISSING_AUDIT_MARTS}")
    if ranking is not None:
        rows = [{**r, "rule_types_label": "、".join(rule_type_label(t) for t in r["rule_types"]) or None}
                for r in ranking]
        total = {"hospital_code": "合计"}
        for key in ("violation_count", "violation_amount", "suspicious_count", "suspicious_amount", "finding_count"):
            total[key] = sum((r[key] for r in rows), Decimal("0.00") if key.endswith("amount") else 0)
        book.table(ws, name, hosp + [
            Col("违规条数", "violation_count", "int"), Col("违规金额", "violation_amount", "money"),
            Col("可疑条数（不扣款）", "suspicious_count", "int"), Col("可疑金额", "suspicious_amount", "money"),
            Col("发现合计", "finding_count", "int"), Col("涉及规则类型", "rule_types_label"),
        ], rows, total=total)
    else:
        _plain(ws)

    name = "智能审核分类"
    by_type = city.audit_by_rule_type(d)
    ws = book.sheet(name, f"全市 {month} 智能审核发现（按规则类型）",
                    note if by_type is not None else f"{head}｜{MISSING_AUDIT_MARTS}")
    if by_type is not None:
        if by_type:
            rows = [{**g, "rule_type_label": rule_type_label(g["rule_type"]),
                     "severity_label": severity_label(g["severity"])} for g in by_type]
            book.table(ws, name, [
                Col("规则类型", "rule_type_label"), Col("性质", "severity_label"), Col("涉及医院数", "hospitals", "int"),
                Col("发现条数", "finding_count", "int"), Col("金额", "flagged_amount", "money"),
            ], rows)
        else:
            ws.write_string(HEADER_ROW, 0, NO_FINDINGS, book.fmt["section"])
            _plain(ws)
    else:
        _plain(ws)

    name = "检查阳性率"
    exams = city.exam_rate_ranking(d)
    ws = book.sheet(name, f"全市 {month} 大型检查阳性率（R21，二级及以上医院；预警：阳性率 ≤ 阈值）",
                    head if exams is not None else f"{head}｜{MISSING_AUDIT_MARTS}")
    if exams is not None:
        if exams:
            book.table(ws, name, hosp + EXAM_COLS, exam_rows(exams), style_of=exam_style)
        else:
            ws.write_string(HEADER_ROW, 0, "本月无检查阳性率数据（无二级及以上医院报送带结果的检查）", book.fmt["section"])
            _plain(ws)
    else:
        _plain(ws)


EXAM_COLS = [
    Col("检查类别", "exam_class"), Col("有结果的检查数", "examined_count", "int"),
    Col("阳性数", "positive_count", "int"), Col("阳性率", "positive_rate", "pct"),
    Col("阈值", "threshold_rate", "pct"), Col("预警", "alert"),
]


def exam_rows(rates: list[dict]) -> list[dict]:
    return [{**r, "alert": "预警" if r["is_alert"] else "正常"} for r in rates]


def exam_style(r: dict) -> dict:
    return {"alert": "alert", "positive_rate": "alert"} if r["is_alert"] else {}


def _plain(ws) -> None:
    """Print setup of a sheet without a table (a note instead): title rows repeated and frozen."""
    ws.freeze_panes(2, 0)
    ws.repeat_rows(0, 1)


def _city_summary(book: Book, d: MonthData, head: str) -> None:
    name = "全市汇总"
    ws = book.sheet(name, f"全市 {month_label(d.month)} 医保基金结算汇总", head)
    month_rows, ytd_rows = city.settlement_totals(d)
    label = lambda rows: [{**r, "insurance": insurance_label(r["insurance_type"]) if r["insurance_type"] else "全市合计"}  # noqa: E731
                          for r in rows]
    cols = [Col("险种", "insurance", width=26), Col("医院数", "hospitals", "int")] + CITY_AMOUNT_COLS
    row = 3
    ws.write_string(row, 0, "一、本月结算", book.fmt["section"])
    row = book.table(ws, name, cols, label(month_rows), start=row + 1, freeze=False)
    row += 1
    ws.write_string(row, 0, f"二、本年累计（1–{d.month.month}月）", book.fmt["section"])
    row = book.table(ws, name, cols, label(ytd_rows), start=row + 1, freeze=False)
    row += 1
    ws.write_string(row, 0, f"三、预算消耗（截至 {d.cutoff.isoformat()}）", book.fmt["section"])
    rows = label(city.consumption_totals(d))
    book.table(ws, name, [
        Col("险种", "insurance", width=26), Col("年度预算指标", "annual_budget_amount", "money"),
        Col("本年累计申报", "consumed_amount", "money"), Col("预算消耗率", "consumption_rate", "pct"),
        Col("时间进度", "time_elapsed", "pct"), Col("红色预警", "red", "int"), Col("黄色预警", "amber", "int"),
        Col("正常", "green", "int"),
    ], rows, start=row + 1, freeze=False)
    ws.set_column(0, 0, 30)
    ws.set_column(1, len(cols) - 1, 17)
    ws.freeze_panes(2, 0)
    ws.repeat_rows(0, 1)
