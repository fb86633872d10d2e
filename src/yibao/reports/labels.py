"""Chinese labels and number formatting shared by the workbooks and the PDFs."""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_UP, Decimal

BUREAU = "市医疗保障局"

INSURANCE_TYPES = {
    "310": "职工基本医疗保险",
    "390": "城乡居民基本医疗保险",
}
INSURANCE_SHORT = {"310": "职工", "390": "居民"}

COMPLIANCE_STATUS = {"completed": "已完成", "on_track": "进度正常", "behind": "进度滞后"}
PAYMENT_STATUS = {
    "paid_on_time": "按时回款",
    "paid_late": "逾期回款",
    "open_not_due": "未到期",
    "overdue": "逾期未付",
}
ALERT_LEVEL = {"red": "红色预警", "amber": "黄色预警", "green": "正常"}
ALERT_TYPE = {"single_brand": "单一品牌集中使用", "surgery_cost": "单台手术耗材费用异常"}

# Smart audit (docs/rules.md R11–R22): rule_type -> (Chinese name, rule number).
AUDIT_RULE_TYPE = {
    "sex": ("限定性别", "R11"),
    "age": ("限定年龄", "R12"),
    "hospital_level": ("限医疗机构级别", "R13"),
    "inpatient_only": ("限住院使用", "R14"),
    "daily_quantity": ("限定频次", "R15"),
    "min_interval_days": ("周期超频次", "R16"),
    "course_days": ("限支付疗程", "R17"),
    "included_in": ("重复收费", "R18"),
    "indication": ("限适应症", "R19"),
    "repeat_exam": ("重复检查", "R20"),
    "positive_rate": ("检查阳性率", "R21"),
    "readmission": ("分解住院", "R22"),
}
SEVERITY = {"violation": "违规", "suspicious": "可疑"}
SUSPICIOUS_NOTE = "可疑，待复核，不扣款"
NO_FINDINGS = "本月无智能审核发现"
SUBJECT_TYPE = {"fee_line": "费用明细", "settlement": "结算"}

# Rows of the "本月结算" block: (label, fct_settlement_monthly column).
SETTLEMENT_ITEMS = [
    ("月度预算指标（月预分额度）", "monthly_quota_amount"),
    ("申报金额（统筹支付，不含谈判药品）", "declared_amount"),
    ("审核扣除（不合理费用）", "deduction_amount"),
    ("合理费用", "reasonable_amount"),
    ("本月拨付", "paid_amount"),
    ("暂缓拨付", "deferred_amount"),
    ("谈判药品统筹支付（预算外全额拨付）", "negotiated_drug_amount"),
]

# Columns of the "本年逐月结算" table: (header, column).
MONTHLY_COLUMNS = [
    ("月度预算指标", "monthly_quota_amount"),
    ("申报金额", "declared_amount"),
    ("审核扣除", "deduction_amount"),
    ("合理费用", "reasonable_amount"),
    ("本月拨付", "paid_amount"),
    ("暂缓拨付", "deferred_amount"),
    ("谈判药品（预算外）", "negotiated_drug_amount"),
]

CENT = Decimal("0.01")
RATE = Decimal("0.0001")


def insurance_name(code: str) -> str:
    return INSURANCE_TYPES.get(code, f"险种{code}")


def insurance_label(code: str) -> str:
    return f"{insurance_name(code)}（{code}）"


def q2(x: Decimal) -> Decimal:
    return x.quantize(CENT, rounding=ROUND_HALF_UP)


def ratio(num: Decimal | None, den: Decimal | None) -> Decimal | None:
    """num / den rounded half-up to 4 decimals; None when undefined."""
    if num is None or den is None or den == 0:
        return None
    return (Decimal(num) / Decimal(den)).quantize(RATE, rounding=ROUND_HALF_UP)


def yuan(x: Decimal | None) -> str:
    if x is None:
        return "—"
    x = q2(Decimal(x))
    return f"-¥{-x:,.2f}" if x < 0 else f"¥{x:,.2f}"


def pct(x: Decimal | None) -> str:
    if x is None:
        return "—"
    return f"{(Decimal(x) * 100).quantize(CENT, rounding=ROUND_HALF_UP)}%"


def num4(x: Decimal | None) -> str:
    return "—" if x is None else f"{Decimal(x):.4f}"


def qty(x: Decimal | None) -> str:
    if x is None:
        return "—"
    x = Decimal(x)
    return f"{x.normalize():f}" if x != x.to_integral_value() else f"{int(x):,}"


def rule_type_label(rule_type: str | None) -> str:
    """限定性别（R11）; an unknown type is shown as it is."""
    name, number = AUDIT_RULE_TYPE.get(rule_type, (rule_type or "—", None))
    return f"{name}（{number}）" if number else name


def severity_label(severity: str | None) -> str:
    return SEVERITY.get(severity, severity or "—")


def month_label(month: date) -> str:
    return f"{month.year}年{month.month:02d}月"


def cn_date(d: date | None) -> str:
    return "—" if d is None else d.isoformat()
