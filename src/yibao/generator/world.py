"""The city's static world: counties, hospital levels and volumes, the consumable catalog, diagnoses,
the claim money model's constants; and the sizing helpers built on them."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from decimal import Decimal

from .. import codes

# --- the city ---------------------------------------------------------------------------------

CITY_NAME = "新乡市"
COUNTIES = (  # code, name: in the order hospitals are placed
    ("410702", "红旗区"),
    ("410711", "牧野区"),
    ("410703", "卫滨区"),
    ("410721", "新乡县"),
    ("410782", "辉县市"),
    ("410724", "获嘉县"),
    ("410704", "凤泉区"),
    ("410725", "原阳县"),
    ("410726", "延津县"),
    ("410727", "封丘县"),
    ("410781", "卫辉市"),
    ("410783", "长垣市"),
)
COUNTY_CODES = tuple(c for c, _ in COUNTIES)
# Birth-place codes on ID numbers: the city's counties (长垣 only from 2019, as 410783) + a few elsewhere.
_BIRTH_REGIONS = ("410702", "410703", "410704", "410711", "410721", "410724", "410725", "410726",
                  "410727", "410781", "410782", "410105", "410202", "130102")

LEVELS = ("三级", "二级", "一级", "基层")
# Per working day at volume 1.0: claims (outpatient + non-surgical inpatient), the inpatient share
# of them, surgeries by type (each also brings an inpatient claim and usage lines), and the scale of
# low-value consumption (purchased, not in the high-value usage extract).
LEVEL_PROFILE = {
    "三级": {"claims": 600.0, "inpatient": 0.10, "pci": 6.0, "joint": 3.0, "gi": 4.0, "low": 3.0},
    "二级": {"claims": 220.0, "inpatient": 0.09, "pci": 1.2, "joint": 1.0, "gi": 2.0, "low": 2.0},
    "一级": {"claims": 70.0, "inpatient": 0.05, "pci": 0.0, "joint": 0.0, "gi": 0.4, "low": 1.0},
    "基层": {"claims": 35.0, "inpatient": 0.02, "pci": 0.0, "joint": 0.0, "gi": 0.0, "low": 0.6},
}
# Rest days (weekends and holidays) scale activity down.
REST_FACTOR = {"outpatient": 0.55, "inpatient": 0.8, "surgery": 0.25, "purchase": 0.5}

# Hospital # → (level, ownership) for the first six; then a repeating mix.
_FIRST_HOSPITALS = (("三级", "public"), ("三级", "public"), ("二级", "public"), ("二级", "private"),
                    ("一级", "public"), ("基层", "public"))
_LATER_HOSPITALS = (("二级", "public"), ("一级", "public"), ("基层", "public"), ("三级", "public"),
                    ("基层", "public"), ("一级", "private"), ("二级", "private"), ("基层", "public"))

# --- the consumable world (static: the national catalog does not depend on the seed) -------------

BRANDS = {
    "10231": "华康介入医疗器械有限公司",
    "10487": "瑞普心脉医疗科技有限公司",
    "11052": "明德生物材料股份有限公司",
    "12316": "康联医疗器械（上海）有限公司",
    "13770": "远航心血管科技有限公司",
    "14105": "博研医学工程有限公司",
    "15520": "安济医疗器械有限公司",
    "16001": "恒通导管有限公司",
    "20118": "骏骨科技股份有限公司",
    "20463": "正衡关节医疗器械有限公司",
    "21027": "天衡骨科植入物有限公司",
    "21839": "固尔康医疗器械有限公司",
    "22340": "锐骨医疗器械有限公司",
    "40115": "康迈外科器械有限公司",
    "40367": "联创微创医疗科技有限公司",
    "50021": "卫康医用制品有限公司",
    "50118": "洁安医疗用品有限公司",
}

CATEGORIES = {
    "C020202": "冠脉支架",
    "C020301": "冠脉球囊扩张导管",
    "C031001": "人工关节",
    "C030501": "骨科螺钉",
    "C040201": "吻合器",
    "C040301": "结扎夹",
    "C140101": "输液器",
    "C140201": "注射器",
}

STENT_PREFIX = "C020202"
JOINT_PREFIX = "C031001"


@dataclass(frozen=True)
class Product:
    key: str  # short name used inside the generator
    kind: str  # stent | balloon | hip | knee | screw | stapler | clip | low
    code: str
    generic_name: str
    product_name: str
    brand: str
    price4: int  # list price (non-selected) or selected price (VBP), 1/10000 yuan
    high_value: bool = True
    status: str = "active"
    vbp: str | None = None  # 'stent' | 'joint' for selected products
    group: str | None = None
    pre_price4: int | None = None
    weight: float = 1.0
    specs: tuple[str, ...] = ("标准型",)

    @property
    def manufacturer(self) -> str:
        return BRANDS[self.brand]


def _code(category: str, generic: str, material: str, feature: str, brand: str) -> str:
    code = f"{category}{generic}{material}{feature}{brand}"
    assert len(code) == 20, code
    return code


def _y(yuan: str) -> int:
    """'469.00' → 4690000 (1/10000 yuan)."""
    return int(Decimal(yuan) * 10000)


_STENT_SPECS = ("2.5×18mm", "2.75×24mm", "3.0×18mm", "3.0×24mm", "3.5×18mm", "3.5×29mm", "4.0×15mm")
_HIP_SPECS = ("股骨柄12#/髋臼杯52mm", "股骨柄13#/髋臼杯54mm", "股骨柄11#/髋臼杯50mm")
_KNEE_SPECS = ("股骨髁C号/胫骨平台3号", "股骨髁D号/胫骨平台4号", "股骨髁B号/胫骨平台2号")

PRODUCTS: tuple[Product, ...] = (
    # 冠脉支架 C020202 (VBP): selected, group A / B
    Product("S1", "stent", _code("C020202", "001", "01", "001", "10231"), "冠脉药物洗脱支架", "钴铬合金雷帕霉素洗脱支架系统",
            "10231", _y("469.00"), vbp="stent", group="A组", pre_price4=_y("10230.00"), weight=3.0, specs=_STENT_SPECS),
    Product("S2", "stent", _code("C020202", "001", "02", "001", "10487"), "冠脉药物洗脱支架", "铂铬合金依维莫司洗脱支架系统",
            "10487", _y("798.00"), vbp="stent", group="A组", pre_price4=_y("12980.00"), weight=2.0, specs=_STENT_SPECS),
    Product("S3", "stent", _code("C020202", "001", "01", "002", "11052"), "冠脉药物洗脱支架", "钴铬合金西罗莫司洗脱支架系统",
            "11052", _y("590.00"), vbp="stent", group="A组", pre_price4=_y("11200.00"), weight=2.0, specs=_STENT_SPECS),
    Product("S4", "stent", _code("C020202", "001", "03", "001", "12316"), "冠脉药物洗脱支架", "不锈钢紫杉醇洗脱支架系统",
            "12316", _y("548.00"), vbp="stent", group="B组", pre_price4=_y("10500.00"), weight=1.5, specs=_STENT_SPECS),
    Product("S5", "stent", _code("C020202", "001", "01", "003", "13770"), "冠脉药物洗脱支架", "钴铬合金药物洗脱支架系统",
            "13770", _y("645.50"), vbp="stent", group="B组", pre_price4=_y("12100.00"), weight=1.5, specs=_STENT_SPECS),
    Product("S6", "stent", _code("C020202", "001", "02", "002", "10231"), "冠脉药物洗脱支架", "铂铬合金雷帕霉素洗脱支架系统（快速交换）",
            "10231", _y("737.50"), vbp="stent", group="A组", pre_price4=_y("11880.00"), weight=1.0, specs=_STENT_SPECS),
    # non-selected stents
    Product("N1", "stent", _code("C020202", "001", "01", "004", "14105"), "冠脉药物洗脱支架", "钴铬合金药物洗脱支架系统",
            "14105", _y("2380.00"), weight=1.2, specs=_STENT_SPECS),
    Product("N2", "stent", _code("C020202", "003", "04", "001", "15520"), "生物可吸收冠脉支架", "生物可吸收冠脉支架系统",
            "15520", _y("8900.00"), weight=0.1, specs=("3.0×18mm", "3.5×18mm")),
    Product("N3", "stent", _code("C020202", "001", "03", "002", "12316"), "冠脉药物洗脱支架", "不锈钢药物洗脱支架系统（一代）",
            "12316", _y("1650.00"), weight=0.6, specs=_STENT_SPECS),
    Product("RS", "stent", _code("C020202", "002", "03", "001", "13770"), "冠脉裸金属支架", "冠脉裸金属支架系统",
            "13770", _y("1200.00"), status="retired", weight=0.0),
    # 冠脉球囊 (not VBP in this city)
    Product("B1", "balloon", _code("C020301", "001", "01", "001", "10231"), "冠脉球囊扩张导管", "快速交换球囊扩张导管",
            "10231", _y("1260.00"), weight=3.0, specs=("2.0×15mm", "2.5×20mm", "3.0×15mm")),
    Product("B2", "balloon", _code("C020301", "001", "02", "001", "16001"), "冠脉球囊扩张导管", "非顺应性球囊扩张导管",
            "16001", _y("2480.00"), weight=1.5, specs=("3.0×12mm", "3.5×12mm")),
    Product("B3", "balloon", _code("C020301", "002", "01", "001", "16001"), "冠脉切割球囊", "切割球囊导管",
            "16001", _y("3980.00"), weight=0.3, specs=("3.0×10mm",)),
    # 人工关节 C031001 (VBP): hip 001 / knee 002
    Product("H1", "hip", _code("C031001", "001", "01", "001", "20118"), "人工髋关节", "陶瓷-陶瓷全髋关节假体系统",
            "20118", _y("7260.00"), vbp="joint", group="髋关节A组", pre_price4=_y("35800.00"), weight=2.0, specs=_HIP_SPECS),
    Product("H2", "hip", _code("C031001", "001", "02", "001", "20463"), "人工髋关节", "陶瓷-聚乙烯全髋关节假体系统",
            "20463", _y("6890.00"), vbp="joint", group="髋关节A组", pre_price4=_y("32600.00"), weight=1.5, specs=_HIP_SPECS),
    Product("H3", "hip", _code("C031001", "001", "03", "001", "21027"), "人工髋关节", "金属-聚乙烯全髋关节假体系统",
            "21027", _y("5180.00"), vbp="joint", group="髋关节B组", pre_price4=_y("30400.00"), weight=1.0, specs=_HIP_SPECS),
    Product("K1", "knee", _code("C031001", "002", "03", "001", "20118"), "人工膝关节", "后稳定型全膝关节假体系统",
            "20118", _y("5650.00"), vbp="joint", group="膝关节A组", pre_price4=_y("32000.00"), weight=2.0, specs=_KNEE_SPECS),
    Product("K2", "knee", _code("C031001", "002", "03", "002", "20463"), "人工膝关节", "十字韧带保留型全膝关节假体系统",
            "20463", _y("5020.00"), vbp="joint", group="膝关节A组", pre_price4=_y("31500.00"), weight=1.5, specs=_KNEE_SPECS),
    Product("K3", "knee", _code("C031001", "002", "02", "001", "21027"), "人工膝关节", "高交联聚乙烯全膝关节假体系统",
            "21027", _y("6180.00"), vbp="joint", group="膝关节A组", pre_price4=_y("33900.00"), weight=1.0, specs=_KNEE_SPECS),
    Product("NH", "hip", _code("C031001", "001", "01", "002", "21839"), "人工髋关节", "陶瓷-陶瓷全髋关节假体系统（进口）",
            "21839", _y("12800.00"), weight=0.5, specs=_HIP_SPECS),
    Product("NK", "knee", _code("C031001", "002", "03", "003", "21839"), "人工膝关节", "活动平台全膝关节假体系统（进口）",
            "21839", _y("11600.00"), weight=0.5, specs=_KNEE_SPECS),
    Product("RJ", "hip", _code("C031001", "001", "03", "009", "20463"), "人工髋关节", "双动头髋关节假体（停产）",
            "20463", _y("9800.00"), status="retired", weight=0.0),
    # 骨科螺钉 C030501, 吻合器 C040201, 结扎夹 C040301 (high value, not VBP)
    Product("SC1", "screw", _code("C030501", "001", "01", "001", "20118"), "皮质骨螺钉", "钛合金皮质骨螺钉",
            "20118", _y("320.00"), weight=2.0, specs=("φ3.5×30mm", "φ4.5×40mm")),
    Product("SC2", "screw", _code("C030501", "002", "01", "001", "22340"), "松质骨螺钉", "钛合金空心松质骨螺钉",
            "22340", _y("455.00"), weight=1.5, specs=("φ6.5×60mm", "φ7.3×80mm")),
    Product("SC3", "screw", _code("C030501", "001", "02", "001", "22340"), "皮质骨螺钉", "不锈钢皮质骨螺钉",
            "22340", _y("268.80"), weight=1.0, specs=("φ3.5×26mm",)),
    Product("ST1", "stapler", _code("C040201", "001", "01", "001", "40115"), "腔镜直线切割吻合器", "一次性使用腔镜直线切割吻合器",
            "40115", _y("3850.00"), weight=1.5, specs=("60mm", "45mm")),
    Product("ST2", "stapler", _code("C040201", "002", "01", "001", "40367"), "管型吻合器", "一次性使用管型消化道吻合器",
            "40367", _y("2960.00"), weight=1.0, specs=("25mm", "28mm, 钉高4.8mm")),
    Product("CL1", "clip", _code("C040301", "001", "02", "001", "40367"), "结扎夹", "可吸收结扎夹",
            "40367", _y("185.00"), weight=1.0, specs=("中号", "大号")),
    # low value (purchases only, not in the high-value usage extract); 4-decimal prices
    Product("L1", "low", _code("C140101", "001", "01", "001", "50021"), "一次性使用输液器", "一次性使用精密过滤输液器",
            "50021", 34567, high_value=False, specs=("带针 0.7mm",)),
    Product("L2", "low", _code("C140201", "001", "01", "001", "50118"), "一次性使用无菌注射器", "一次性使用无菌注射器",
            "50118", 5275, high_value=False, specs=("5ml", "10ml")),
)
PRODUCT_BY_KEY = {p.key: p for p in PRODUCTS}
# 27-char variants (20-char code + 7-digit 规格型号 serial): the catalog carries both.
LONG_VARIANTS = {"SC1": "0000301", "SC2": "0000652", "ST1": "0000060", "ST2": "0000028"}


def _udi(code: str) -> str:
    """A fixed GTIN-14 per consumable code: indicator, 69 (China), brand, item ref, check."""
    h = int(hashlib.sha256(code.encode()).hexdigest()[:10], 16)
    payload = f"{h % 2}69{code[15:20]}{h % 100000:05d}"
    return payload + codes.gs1_check_digit(payload)


# Distributors (配送企业): fictional; USCC = 91 + region + 9-char subject code + check char.
_DISTRIBUTORS = (
    ("410702", "MA3X5K7Q2"),
    ("410711", "MA40C1LN8"),
    ("410100", "MA9F2T6UX"),
    ("410703", "75480123X"),
    ("410782", "MA47RDW0Y"),
    ("410100", "17001839B"),
)
SUPPLIER_USCC = tuple(f"91{r}{s}" + codes.uscc_check_char(f"91{r}{s}") for r, s in _DISTRIBUTORS)

# Diagnoses (all in tests/data/reference/icd10_chs_diagnoses.tsv; tests check it) and DRG groups.
OUTPATIENT_DIAGNOSES = (
    "J06.900", "I10.x00", "E11.900", "K29.500", "J20.900", "M54.500", "A09.900", "R50.900", "K59.000",
    "L20.900", "H10.900", "N39.000", "Z00.000", "G47.000", "J45.900", "E78.500", "F32.900", "K21.000",
    "R51.x00", "I25.103", "M51.202", "H25.900",
)
CHRONIC_DIAGNOSES = ("I10.x00", "E11.900", "J44.900", "I63.900", "N18.500", "I25.103", "C34.900",
                     "C50.900", "E11.200x023+N08.3*", "I10.x00x002")
INPATIENT_DIAGNOSES = (  # (code, drg)
    ("J18.900", "ES33"), ("I63.900", "BR23"), ("J44.100", "ET23"), ("I50.900", "FR25"),
    ("K80.200x003", "HC29"), ("N20.000", "LX19"), ("C34.900", "ER13"), ("K40.900", "GE15"),
    ("I20.000", "FR39"), ("E11.900", "KS15"), ("J20.900", "EX25"), ("Z51.100", "RE15"),
)
TRAUMA_DIAGNOSES = (("S72.000", "IF33"), ("S82.000", "IF49"))
MATERNITY_OUTPATIENT = ("Z34.900", "Z32.100")
MATERNITY_INPATIENT = (("O80.900", "OC19"), ("O82.000", "OB19"))
SURGERY_DIAGNOSES = {  # kind → ((code, drg, medical_category, weight), …)
    "pci": (("I25.103", "FM19", "21", 0.50), ("I20.000", "FM19", "21", 0.35), ("I21.900", "FM19", "24", 0.15)),
    "hip": (("M16.101", "IC29", "21", 0.40), ("M16.900", "IC29", "21", 0.25), ("S72.000", "IC29", "22", 0.35)),
    "knee": (("M17.101", "IC29", "21", 0.55), ("M17.900", "IC29", "21", 0.45)),
    "gi": (("K80.100x001", "HC29", "21", 0.45), ("K35.800x001", "GD25", "21", 0.30), ("C18.900", "GB29", "21", 0.25)),
}
DEPARTMENTS = {"pci": ("0304", "心血管内科"), "joint": ("0703", "骨科"), "gi": ("0701", "普通外科")}

# Claim money model per medical category: mean total (yuan), spread (lognormal sigma).
_CATEGORY_MEANS = {
    "11": (160, 0.7), "12": (12, 0.0), "13": (380, 0.7), "14": (520, 0.6), "16": (210, 0.6), "51": (260, 0.5),
    "21": (8500, 0.55), "22": (11000, 0.55), "23": (26000, 0.5), "24": (14000, 0.5), "28": (5200, 0.4),
    "52": (4800, 0.35),
}
_OUTPATIENT_MIX = (("11", 0.68), ("12", 0.04), ("13", 0.06), ("14", 0.15), ("16", 0.03), ("51", 0.04))
_INPATIENT_MIX = (("21", 0.80), ("22", 0.04), ("23", 0.02), ("24", 0.05), ("28", 0.03), ("52", 0.06))
_SURGERY_BASE_YUAN = {"pci": 16000, "hip": 21000, "knee": 19000, "gi": 12000}

# Synthetic statutory-holiday schedules for years after the bundled calendar (chinese_calendar).
_LUNAR_HOLIDAYS = {  # year: spring festival day 1, qingming, dragon boat, mid-autumn
    2027: ((2, 6), (4, 5), (6, 9), (9, 15)),
    2028: ((1, 26), (4, 4), (5, 28), (10, 3)),
    2029: ((2, 13), (4, 4), (6, 16), (9, 22)),
    2030: ((2, 3), (4, 5), (6, 5), (9, 12)),
}
MAX_YEAR = max(_LUNAR_HOLIDAYS)


def estimate_rows_per_day(hospitals: int, volume: float = 1.0) -> dict[str, float]:
    """Approximate data rows of one working day, by extract.

    Purchases hardly grow with volume (orders get bigger, not more frequent): about 2 lines a day
    for a surgical hospital, one per stocked code on the first day.
    """
    claims = usage = purchase = 0.0
    for i in range(hospitals):
        level, _ = _level_of(i)
        p = LEVEL_PROFILE[level]
        surgeries = p["pci"] + p["joint"] + p["gi"]
        claims += (p["claims"] + surgeries) * volume * 1.006
        usage += (p["pci"] * 2.1 + p["joint"] * 1.6 + p["gi"] * 1.8) * volume
        purchase += 2.0 if surgeries else 0.4
    return {"purchase": round(purchase, 1), "usage": round(usage, 1), "claim": round(claims, 1),
            "total": round(purchase + usage + claims, 1)}


def volume_for_rows(rows: int, hospitals: int) -> float:
    """The ``volume`` that makes one working day of ``hospitals`` hospitals about ``rows`` data rows."""
    fixed = estimate_rows_per_day(hospitals, 0.0)["total"]  # purchases do not grow with volume
    return max(rows - fixed, 1.0) / (estimate_rows_per_day(hospitals, 1.0)["total"] - fixed)


def _level_of(index: int) -> tuple[str, str]:
    if index < len(_FIRST_HOSPITALS):
        return _FIRST_HOSPITALS[index]
    return _LATER_HOSPITALS[(index - len(_FIRST_HOSPITALS)) % len(_LATER_HOSPITALS)]


def catalog_codes() -> dict[str, Product]:
    """Every catalog code (20-char and 27-char variants) → product."""
    out = {}
    for p in PRODUCTS:
        out[p.code] = p
        if p.key in LONG_VARIANTS:
            out[p.code + LONG_VARIANTS[p.key]] = p
    return out
