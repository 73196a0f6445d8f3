"""Synthetic delivery-user records for the lab's waybill database.

Every record is invented, but shaped like the real thing (Art. 3 of the Provisions):
names, mainland mobile numbers, 18-digit resident ID numbers with a valid GB 11643
check digit, addresses and waybill items. The PII scanner and the storage controls must
find data of exactly this shape, so the generator keeps it realistic.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, timedelta

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘"
_GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华建国志红玉梅"
# (province, city, region code used in the ID number, districts)
_PLACES = [
    ("广东省", "深圳市", "440305", ["南山区", "福田区", "宝安区"]),
    ("广东省", "广州市", "440106", ["天河区", "越秀区", "海珠区"]),
    ("上海市", "上海市", "310115", ["浦东新区", "徐汇区", "静安区"]),
    ("北京市", "北京市", "110105", ["朝阳区", "海淀区", "东城区"]),
    ("浙江省", "杭州市", "330106", ["西湖区", "余杭区", "滨江区"]),
    ("四川省", "成都市", "510107", ["武侯区", "锦江区", "高新区"]),
    ("湖北省", "武汉市", "420106", ["武昌区", "洪山区", "江汉区"]),
]
_STREETS = ["科技园路", "人民路", "中山路", "解放大道", "建设路", "长江路", "文化路", "新华街"]
_ITEMS = ["手机", "衣服", "书籍", "食品", "化妆品", "电脑配件", "鞋", "文件", "玩具", "药品"]
_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ID_CHECK = "10X98765432"


def id_check_digit(first17: str) -> str:
    """Return the GB 11643-1999 check character for the first 17 digits of an ID number."""
    if len(first17) != 17 or not first17.isdigit():
        raise ValueError("need exactly 17 digits")
    total = sum(int(d) * w for d, w in zip(first17, _ID_WEIGHTS, strict=True))
    return _ID_CHECK[total % 11]


def is_valid_resident_id(value: str) -> bool:
    """True when value is an 18-character resident ID number with a correct check character."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    return id_check_digit(value[:17]) == value[17].upper()


@dataclass(frozen=True)
class Party:
    name: str
    phone: str
    id_number: str
    address: str


@dataclass(frozen=True)
class Waybill:
    waybill_no: str
    sender: Party
    recipient: Party
    item: str
    weight_kg: float
    created_at: datetime


class _Generator:
    def __init__(self, seed: int) -> None:
        # Not security-relevant: a seeded generator makes the lab's data reproducible.
        self._rng = random.Random(seed)  # noqa: S311

    def name(self) -> str:
        given = "".join(self._rng.choice(_GIVEN) for _ in range(self._rng.choice((1, 2))))
        return self._rng.choice(_SURNAMES) + given

    def phone(self) -> str:
        return (
            "1"
            + str(self._rng.randint(3, 9))
            + "".join(str(self._rng.randint(0, 9)) for _ in range(9))
        )

    def id_number(self, region: str) -> str:
        born = date(1960, 1, 1) + timedelta(days=self._rng.randint(0, 40 * 365))
        first17 = f"{region}{born:%Y%m%d}{self._rng.randint(0, 999):03d}"
        return first17 + id_check_digit(first17)

    def party(self) -> Party:
        province, city, region, districts = self._rng.choice(_PLACES)
        street = f"{self._rng.choice(districts)}{self._rng.choice(_STREETS)}"
        building = (
            f"{self._rng.randint(1, 999)}号{self._rng.randint(1, 30)}栋"
            f"{self._rng.randint(101, 2808)}室"
        )
        address = f"{province}{city}{street}{building}"
        return Party(self.name(), self.phone(), self.id_number(region), address)

    def waybill(self, serial: int, start: datetime) -> Waybill:
        return Waybill(
            waybill_no=f"PG{start:%y}{serial:010d}",
            sender=self.party(),
            recipient=self.party(),
            item=self._rng.choice(_ITEMS),
            weight_kg=round(self._rng.uniform(0.1, 30.0), 2),
            created_at=start + timedelta(minutes=self._rng.randint(0, 60 * 24 * 90)),
        )


def waybills(count: int, seed: int = 38) -> Iterator[Waybill]:
    """Yield count synthetic waybills; the same seed always yields the same records."""
    if count < 0:
        raise ValueError("count must not be negative")
    gen = _Generator(seed)
    start = datetime(2026, 6, 1, 8, 0, 0)
    for serial in range(1, count + 1):
        yield gen.waybill(serial, start)


def _copy_field(value: str) -> str:
    """Escape a value for PostgreSQL's COPY text format."""
    return value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


def waybill_sql(count: int, seed: int = 38) -> str:
    """A psql script that creates the lab's waybill table and loads count records with COPY."""
    lines = [
        "BEGIN;",
        "CREATE TABLE IF NOT EXISTS waybill (",
        "  waybill_no text PRIMARY KEY,",
        "  sender_name text NOT NULL, sender_phone text NOT NULL,",
        "  sender_id_number text NOT NULL, sender_address text NOT NULL,",
        "  recipient_name text NOT NULL, recipient_phone text NOT NULL,",
        "  recipient_id_number text NOT NULL, recipient_address text NOT NULL,",
        "  item text NOT NULL, weight_kg numeric(6,2) NOT NULL,",
        "  created_at timestamp NOT NULL);",
        "TRUNCATE waybill;",
        "COPY waybill FROM stdin;",
    ]
    for w in waybills(count, seed):
        s, r = w.sender, w.recipient
        fields = [
            w.waybill_no,
            s.name,
            s.phone,
            s.id_number,
            s.address,
            r.name,
            r.phone,
            r.id_number,
            r.address,
            w.item,
            f"{w.weight_kg:.2f}",
            w.created_at.isoformat(sep=" "),
        ]
        lines.append("\t".join(_copy_field(f) for f in fields))
    lines += ["\\.", "COMMIT;"]
    return "\n".join(lines) + "\n"


def waybill_csv(count: int, seed: int = 38) -> str:
    """A plaintext export of waybills, as a careless operator leaves on an app server."""
    rows = ["waybill_no,recipient_name,recipient_phone,recipient_id_number,recipient_address,item"]
    for w in waybills(count, seed):
        r = w.recipient
        rows.append(f"{w.waybill_no},{r.name},{r.phone},{r.id_number},{r.address},{w.item}")
    return "\n".join(rows) + "\n"
