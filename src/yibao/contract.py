"""The landing-zone extract contract (docs/extract-contract.md) as data.

Every consumer (loader, generator, raw DDL, tests) reads the column lists from here, so the
contract has one home. Types: ``text``, ``date``, ``timestamp``, ``money`` (≤ 2 decimals),
``price`` (≤ 4 decimals), ``qty`` (numeric, ≠ 0), ``flag`` (Y/N, 是/否).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    zh: str
    kind: str = "text"
    required: bool = True


@dataclass(frozen=True)
class Extract:
    name: str
    zh: str
    key: str  # natural key column (with hospital_code)
    columns: tuple[Column, ...]

    @property
    def raw_table(self) -> str:
        return f"raw.{self.name}"

    def column(self, name: str) -> Column:
        return next(c for c in self.columns if c.name == name)


C = Column

PURCHASE = Extract(
    "purchase",
    "采购入库明细",
    "purchase_line_id",
    (
        C("purchase_line_id", "采购明细号"),
        C("hospital_code", "定点医疗机构代码"),
        C("order_date", "订单日期", "date"),
        C("delivery_date", "到货确认日期", "date"),
        C("consumable_code", "医保耗材代码"),
        C("udi_di", "产品标识", required=False),
        C("product_name", "产品名称"),
        C("spec", "规格型号", required=False),
        C("manufacturer", "生产企业"),
        C("supplier_uscc", "配送企业统一社会信用代码"),
        C("quantity", "数量", "qty"),
        C("unit_price", "采购单价", "price"),
        C("amount", "金额", "money"),
        C("via_platform", "是否平台采购", "flag"),
        C("invoice_no", "发票号", required=False),
        C("paid_date", "回款日期", "date", required=False),
        C("paid_amount", "回款金额", "money", required=False),
    ),
)

USAGE = Extract(
    "usage",
    "高值耗材使用(收费)明细",
    "usage_id",
    (
        C("usage_id", "使用明细号"),
        C("hospital_code", "定点医疗机构代码"),
        C("visit_id", "就诊流水号"),
        C("patient_id_no", "身份证号", "id_number"),
        C("dept_code", "科室代码"),
        C("doctor_code", "医保医师代码"),
        C("surgery_id", "手术记录号", required=False),
        C("consumable_code", "医保耗材代码"),
        C("udi_di", "产品标识", required=False),
        C("batch_no", "生产批号", required=False),
        C("quantity", "数量", "qty"),
        C("charge_unit_price", "收费单价", "price"),
        C("charge_amount", "收费金额", "money"),
        C("used_at", "使用时间", "timestamp"),
    ),
)

CLAIM = Extract(
    "claim",
    "医保结算记录",
    "settlement_id",
    (
        C("settlement_id", "结算流水号"),
        C("hospital_code", "定点医疗机构代码"),
        C("visit_id", "就诊流水号"),
        C("patient_id_no", "身份证号", "id_number"),
        C("insurance_type", "险种类型"),
        C("medical_category", "医疗类别"),
        C("admission_date", "入院日期", "date", required=False),
        C("discharge_date", "出院日期", "date", required=False),
        C("settled_at", "结算时间", "timestamp"),
        C("principal_diagnosis", "主要诊断编码"),
        C("drg_code", "DRG分组编码", required=False),
        C("total_amount", "医疗费用总额", "money"),
        C("fund_paid", "统筹基金支付", "money"),
        C("other_fund_paid", "其他基金支付", "money"),
        C("account_paid", "个人账户支付", "money"),
        C("cash_paid", "个人现金支付", "money"),
        C("negotiated_drug_amount", "谈判药品统筹支付", "money"),
        C("reversal_of", "被冲正结算流水号", required=False),
    ),
)

# Optional fourth extract (DOMAIN §2): every charged line of a visit; feeds smart audit (R11–R22).
# Stored with patient_key, patient_sex, patient_birth_year and patient_age_days (completed days of
# age on the charge date), never the ID number or the birth date.
FEE_DETAIL = Extract(
    "fee_detail",
    "费用明细",
    "fee_line_id",
    (
        C("fee_line_id", "费用明细流水号"),
        C("hospital_code", "定点医疗机构代码"),
        C("visit_id", "就诊流水号"),
        C("patient_id_no", "身份证号", "id_number"),
        C("item_type", "项目类别"),
        C("item_code", "医保目录编码"),
        C("item_name", "项目名称"),
        C("dept_code", "科室代码"),
        C("doctor_code", "医保医师代码"),
        C("charged_at", "费用发生时间", "timestamp"),
        C("quantity", "数量", "qty"),
        C("unit_price", "单价", "price"),
        C("amount", "金额", "money"),
        C("exam_result", "检查结果", required=False),
    ),
)
# item_type → what it is (CODES.md); item_code's format depends on it.
FEE_ITEM_TYPES = {"11": "西药", "12": "中成药", "13": "中药饮片", "21": "医疗服务项目", "31": "医用耗材"}

# The smart-audit rule library (DOMAIN §3 audit_rules): the national default ships in
# yibao/data/audit_rules_national.csv; a bureau adds or overrides rows with reference/audit_rules.csv.
AUDIT_RULES_COLUMNS: tuple[Column, ...] = (
    C("rule_id", "规则编号"),
    C("rule_type", "规则类型"),
    C("item_prefix", "项目编码前缀", required=False),
    C("item_name", "项目名称", required=False),
    C("severity", "违规程度"),
    C("allowed_sex", "限定性别", required=False),
    C("min_age_days", "最小年龄天数", "int", required=False),
    C("max_age_days", "最大年龄天数", "int", required=False),
    C("min_hospital_level", "最低医院等级", required=False),
    C("max_quantity", "最大数量", "qty", required=False),
    C("days", "天数", "int", required=False),
    C("main_item_prefix", "主项目编码前缀", required=False),
    C("diagnosis_prefixes", "诊断编码前缀", required=False),
    C("exam_class", "检查类别", required=False),
    C("threshold", "阈值", "rate", required=False),
    C("effective_from", "生效日期", "date"),
    C("effective_to", "失效日期", "date", required=False),
    C("source", "来源", required=False),
)
AUDIT_RULE_TYPES = (
    "sex", "age", "hospital_level", "inpatient_only", "daily_quantity", "min_interval_days",
    "course_days", "included_in", "indication", "repeat_exam", "positive_rate", "readmission",
)

EXTRACTS: dict[str, Extract] = {e.name: e for e in (PURCHASE, USAGE, CLAIM, FEE_DETAIL)}
# Extracts a hospital may deliver or not (DOMAIN §2): never asked of a hospital that never sent one;
# a hospital that sent one before and not on a night gets a delivery warning.
OPTIONAL_EXTRACTS = {"fee_detail"}

# Reference data: whole-file snapshots; the latest load of each file is the truth.
REFERENCE: dict[str, tuple[Column, ...]] = {
    "hospitals": (
        C("hospital_code", "定点医疗机构代码"),
        C("hospital_name", "医疗机构名称"),
        C("level", "医院等级"),
        C("county_code", "区县代码"),
        C("ownership", "所有制"),
    ),
    "consumable_catalog": (
        C("consumable_code", "医保耗材代码"),
        C("generic_name", "通用名"),
        C("category_code", "分类代码"),
        C("is_high_value", "是否高值", "flag"),
        C("status", "状态"),
    ),
    "vbp_batches": (
        C("batch_id", "批次编号"),
        C("batch_name", "批次名称"),
        C("category_prefix", "类别前缀"),
        C("cycle_start", "采购周期开始", "date"),
        C("cycle_end", "采购周期结束", "date"),
    ),
    "vbp_products": (
        C("batch_id", "批次编号"),
        C("product_group", "产品组"),
        C("consumable_code", "医保耗材代码"),
        C("manufacturer", "生产企业"),
        C("selected_price", "中选价格", "price"),
        C("pre_vbp_price", "集采前价格", "price", required=False),
    ),
    "vbp_agreed_volumes": (
        C("batch_id", "批次编号"),
        C("hospital_code", "定点医疗机构代码"),
        C("product_group", "产品组"),
        C("base_qty", "采购量基数", "qty"),
        C("agreed_ratio", "约定采购比例", "rate"),
    ),
    "fund_budgets": (
        C("year", "年度", "int"),
        C("hospital_code", "定点医疗机构代码"),
        C("insurance_type", "险种类型"),
        C("annual_budget", "总额预算指标", "money"),
        *(C(f"m{m:02d}_weight", f"{m}月权重", "rate", required=False) for m in range(1, 13)),
    ),
    "settlement_params": (
        C("year", "年度", "int"),
        C("surplus_retention_rate", "结余留用比例", "rate", required=False),
        C("overspend_share_rate", "超支分担比例", "rate", required=False),
    ),
    "workday_overrides": (
        C("date", "日期", "date"),
        C("is_workday", "是否工作日", "flag"),
    ),
    "audit_rules": AUDIT_RULES_COLUMNS,
    # the packaged national rule library (yibao/data/audit_rules_national.csv), loaded every night
    # like a landing reference file (content-hash dedup: a no-op once loaded) into raw.ref_audit_rules
    "audit_rules_national": AUDIT_RULES_COLUMNS,
}
OPTIONAL_REFERENCE = {"workday_overrides", "audit_rules", "audit_rules_national"}
# reference name → raw table suffix when it differs (both rule libraries land in raw.ref_audit_rules)
REFERENCE_TABLES = {"audit_rules_national": "audit_rules"}
# reference files with a natural key: a key twice in one file quarantines every row holding it
REFERENCE_KEYS = {"audit_rules": "rule_id", "audit_rules_national": "rule_id"}
# reference files the loader supplies itself (packaged data), never read from the landing zone
PACKAGED_REFERENCE = {"audit_rules_national": "audit_rules_national.csv"}

# Stored columns: the ID number never reaches a table; the loader replaces it.
PSEUDONYM_COLUMNS = ("patient_key", "patient_sex", "patient_birth_year")
LINEAGE_COLUMNS = ("load_id", "source_file", "source_row", "business_date", "loaded_at", "extra")
