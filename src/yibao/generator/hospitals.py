"""The city's hospitals: level, formats, doctors, formulary, pricing behaviour."""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .common import _weighted
from .formats import FileFormat, _DateFormatter, _format_for
from .world import COUNTIES, LEVEL_PROFILE, LONG_VARIANTS, PRODUCT_BY_KEY, _level_of


@dataclass
class _Doctor:
    code: str
    kind: str  # pci | joint | gi
    loyal_brand: str | None
    weight: float


@dataclass
class _Hospital:
    index: int
    code: str
    name: str
    level: str
    county: str
    ownership: str
    fmt: FileFormat
    dates: _DateFormatter
    profile: dict
    doctors: dict[str, list[_Doctor]]
    doctor_tables: dict[str, tuple]
    formulary: list[str]  # product keys stocked (and so purchased)
    untraceable: str | None  # a product key used rarely but never purchased (跟台)
    long_codes: bool  # uses 27-char codes for screws and staplers
    discount: float  # on list prices
    violation_rate: float  # share of selected-product purchase lines not at the selected price
    markup_rate: float  # share of usage lines charged above the purchase price
    off_platform: float
    budget_factor: dict[str, float]
    window: tuple[int, int]  # patient pool offset and width
    # state
    stock: dict[str, int] = field(default_factory=dict)
    last_price: dict[str, int] = field(default_factory=dict)
    reorder: dict[str, tuple[int, int]] = field(default_factory=dict)
    n_purchase: int = 0
    n_usage: int = 0
    n_claim: int = 0
    n_visit: int = 0
    n_surgery: int = 0
    n_fee: int = 0
    n_planned: int = 0

    def code_of(self, key: str) -> str:
        p = PRODUCT_BY_KEY[key]
        if self.long_codes and key in LONG_VARIANTS:
            return p.code + LONG_VARIANTS[key]
        return p.code


def _hospital_name(level: str, ownership: str, county_name: str, k: int) -> str:
    if level == "三级":
        names = ("新乡市第一人民医院", "新乡市中心医院", "新乡市第二人民医院", "新乡市第三人民医院", "新乡市中医院")
        return names[k] if k < len(names) else f"新乡市第{k + 1}人民医院"
    if level == "二级":
        return f"{county_name}{'仁和医院' if ownership == 'private' else ('人民医院', '中医院', '妇幼保健院')[k % 3]}"
    if level == "一级":
        return f"{county_name}{'康宁医院' if ownership == 'private' else ('第一社区医院', '城关医院', '第二社区医院')[k % 3]}"
    return f"{county_name}{('城关镇卫生院', '社区卫生服务中心', '中心卫生院', '第二社区卫生服务中心')[k % 4]}"


def make_hospitals(rng: random.Random, n: int) -> list[_Hospital]:
    hospitals = []
    per_county: dict[str, int] = {}
    per_level: dict[str, int] = {}
    names: set[str] = set()
    for i in range(n):
        level, ownership = _level_of(i)
        county, county_name = COUNTIES[i % len(COUNTIES)]
        seq = per_county.get(county, 0) + 1
        per_county[county] = seq
        k = per_level.get(level, 0)
        per_level[level] = k + 1
        name = _hospital_name(level, ownership, county_name, k)
        if name in names:
            name = f"{name}（{seq}院区）"
        names.add(name)
        code = f"H{county}{seq:05d}"
        profile = LEVEL_PROFILE[level]
        # doctors per surgical kind
        doctors: dict[str, list[_Doctor]] = {}
        dseq = 0
        for kind, per_day in (("pci", profile["pci"]), ("joint", profile["joint"]), ("gi", profile["gi"])):
            if per_day <= 0:
                continue
            count = max(2, round(per_day * 0.8)) if kind != "gi" else max(2, round(per_day))
            doctors[kind] = []
            for j in range(count):
                dseq += 1
                loyal = None
                if j == 0 and kind == "pci":  # the first cardiologist of every PCI hospital is loyal
                    loyal = ("10231", "10487", "11052", "13770")[i % 4]
                elif j == 0 and kind == "joint" and i % 2 == 1:
                    loyal = ("20118", "20463", "21027")[i % 3]
                doctors[kind].append(
                    _Doctor(f"D{county}{i:03d}{dseq:03d}", kind, loyal, 0.6 + rng.random())
                )
        doctor_tables = {k: _weighted((d, d.weight) for d in v) for k, v in doctors.items()}
        formulary = ["L1", "L2"]
        untraceable = None
        if profile["pci"] > 0:
            non_selected = ["N1", "N2", "N3"]
            untraceable = non_selected[i % 3]
            formulary += [k for k in ("S1", "S2", "S3", "S4", "S5", "S6", "N1", "N2", "N3", "B1", "B2", "B3")
                          if k != untraceable]
        if profile["joint"] > 0:
            formulary += ["H1", "H2", "H3", "K1", "K2", "K3", "NH", "NK", "SC1", "SC2", "SC3"]
        if profile["gi"] > 0:
            formulary += ["ST1", "ST2", "CL1"]
        fmt = _format_for(i)
        private = ownership == "private"
        hospitals.append(
            _Hospital(
                index=i, code=code, name=name, level=level, county=county, ownership=ownership,
                fmt=fmt, dates=_DateFormatter(fmt.date_style), profile=profile, doctors=doctors,
                doctor_tables=doctor_tables, formulary=formulary, untraceable=untraceable,
                long_codes=i % 2 == 1, discount=(1.0, 0.98, 0.95, 0.97)[i % 4],
                violation_rate=0.08 if private else 0.012,
                markup_rate=0.2 if private else 0.01,
                off_platform=0.15 if private else 0.02,
                budget_factor={  # budget ≈ expected declared × factor in [0.85, 1.2]: some overrun
                    "310": min(1.2, max(0.85, (0.85, 1.0, 1.12, 0.9, 1.2, 1.05)[i % 6] * (0.97 + 0.06 * rng.random()))),
                    "390": min(1.2, max(0.85, (1.15, 0.88, 1.0, 1.2, 0.95, 0.86)[i % 6] * (0.97 + 0.06 * rng.random()))),
                },
                window=(0, 0),
            )
        )
    return hospitals
