"""Fake people, trips and hotel stays of the simulated records office.

Everything is generated from a seed, so two runs load identical tables.  Resident ID
numbers follow GB 11643-1999 (6-digit area, birth date, 3-digit sequence, check character)
and are therefore *valid*, but belong to nobody.

>>> people = make_citizens(3, seed=1)
>>> [len(p.national_id) for p in people], people[0].id
([18, 18, 18], 1)
>>> from features.national_id import check_char
>>> all(check_char(p.national_id[:17]) == p.national_id[17] for p in people)
True
"""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterator
from dataclasses import dataclass

from features.national_id import check_char

AREAS = (
    ("110101", "北京市东城区"),
    ("110105", "北京市朝阳区"),
    ("310101", "上海市黄浦区"),
    ("310115", "上海市浦东新区"),
    ("440106", "广州市天河区"),
    ("440305", "深圳市南山区"),
    ("510107", "成都市武侯区"),
    ("330106", "杭州市西湖区"),
    ("420106", "武汉市武昌区"),
    ("610113", "西安市雁塔区"),
)
CITIES = ("北京", "上海", "广州", "深圳", "成都", "杭州", "武汉", "西安", "南京", "重庆")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林高罗郑梁谢宋唐许韩冯邓曹彭曾肖田董"
GIVEN = (*"伟芳娜敏静丽强磊军洋勇艳杰娟涛明超霞平刚辉鹏华飞鑫波斌宇浩凯", "秀英", "秀兰", "桂英")
STREETS = ("建国路", "人民路", "解放路", "中山路", "和平街", "文化路", "长安街", "滨江路")
HOTELS = (
    "如家酒店(王府井店)",
    "汉庭酒店(人民广场店)",
    "锦江之星(天河店)",
    "Hilton Shanghai",
    "7天连锁酒店(春熙路店)",
    "全季酒店(西湖店)",
    "Holiday Inn Express Chengdu",
    "亚朵酒店(钟楼店)",
    "维也纳酒店(光谷店)",
)
TRAVEL_MODES = ("train", "flight", "coach")


def national_id(area: str, birth: dt.date, seq: int) -> str:
    """18-character resident ID: area, ``YYYYMMDD``, 3-digit sequence, check character.

    >>> national_id("110105", dt.date(1949, 12, 31), 2)
    '11010519491231002X'
    """
    first17 = f"{area}{birth:%Y%m%d}{seq:03d}"
    return first17 + check_char(first17)


@dataclass(frozen=True)
class Citizen:
    """One row of ``citizens`` (``id`` is the serial the table assigns on load)."""

    id: int
    national_id: str
    full_name: str
    phone: str
    address: str
    birth_date: dt.date

    def row(self) -> tuple[str, str, str, str, dt.date]:
        """The loaded columns (everything but ``id``)."""
        return (self.national_id, self.full_name, self.phone, self.address, self.birth_date)


def _random_id(rnd: random.Random) -> tuple[str, dt.date, str]:
    code, city = rnd.choice(AREAS)
    birth = dt.date(1940, 1, 1) + dt.timedelta(days=rnd.randrange(365 * 66))
    return national_id(code, birth, rnd.randrange(1, 1000)), birth, city


def make_citizens(n: int, seed: int, first_id: int = 1) -> tuple[Citizen, ...]:
    """``n`` distinct fake citizens; every 8th shares the address of the previous one."""
    rnd = random.Random(f"citizens:{seed}:{first_id}")
    out: list[Citizen] = []
    seen: set[str] = set()
    while len(out) < n:
        nid, birth, city = _random_id(rnd)
        if nid in seen:
            continue
        seen.add(nid)
        i = first_id + len(out)
        if out and i % 8 == 0:
            address = out[-1].address  # a family member
        else:
            street, no = rnd.choice(STREETS), rnd.randrange(1, 300)
            address = f"{city}{street}{no}号{rnd.randrange(1, 30)}-{rnd.randrange(101, 2505)}"
        phone = f"1{rnd.choice('3589')}{rnd.randrange(10**9):09d}"
        name = rnd.choice(SURNAMES) + rnd.choice(GIVEN)
        out.append(Citizen(i, nid, name, phone, address, birth))
    return tuple(out)


def absent_ids(n: int, seed: int, taken: set[str]) -> tuple[str, ...]:
    """``n`` valid ID numbers that are not in ``taken`` (lookups that return no row).

    >>> ids = absent_ids(2, seed=1, taken=set())
    >>> len(set(ids)), all(len(i) == 18 for i in ids)
    (2, True)
    """
    rnd = random.Random(f"absent:{seed}")
    out: list[str] = []
    while len(out) < n:
        nid = _random_id(rnd)[0]
        if nid not in taken and nid not in out:
            out.append(nid)
    return tuple(out)


def travel_rows(
    n: int, n_citizens: int, seed: int, start: dt.date, days: int
) -> Iterator[tuple[int, str, str, str, dt.date]]:
    """``(citizen_id, mode, origin, destination, depart_date)`` rows, dates in the window."""
    rnd = random.Random(f"travel:{seed}:{start}")
    for _ in range(n):
        origin, destination = rnd.sample(CITIES, 2)
        day = start + dt.timedelta(days=rnd.randrange(days))
        yield (rnd.randrange(1, n_citizens + 1), rnd.choice(TRAVEL_MODES), origin, destination, day)


def hotel_rows(
    n: int, n_citizens: int, seed: int, start: dt.date, days: int
) -> Iterator[tuple[int, str, dt.date, int]]:
    """``(citizen_id, hotel, checkin, nights)`` rows, check-ins in the window."""
    rnd = random.Random(f"hotel:{seed}:{start}")
    for _ in range(n):
        day = start + dt.timedelta(days=rnd.randrange(days))
        yield (rnd.randrange(1, n_citizens + 1), rnd.choice(HOTELS), day, rnd.randint(1, 6))
