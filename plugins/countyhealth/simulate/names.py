"""Chinese names with realistic frequencies, and the ways clerks mistype them.

Surname weights follow the 2020 census ranking (王 李 张 刘 陈 …) with the Fujian-heavy tail of a county like
Yongtai (林 黄 郑 陈 are far more common there). Homophones (伟/玮, 丽/莉) are what a clerk types when a name
is given by ear; traditional characters come from older records and Taiwan-educated staff.
"""

from __future__ import annotations

import random

# (surname, weight) — Fujian county: 陈 林 黄 郑 lead
SURNAMES = [
    ("陈", 110), ("林", 100), ("黄", 70), ("郑", 55), ("张", 45), ("李", 45), ("王", 40), ("吴", 35),
    ("刘", 30), ("杨", 22), ("许", 20), ("蔡", 18), ("潘", 16), ("邱", 14), ("叶", 14), ("周", 14),
    ("詹", 12), ("余", 12), ("何", 10), ("谢", 10), ("高", 9), ("卢", 8), ("方", 8), ("曾", 8), ("翁", 7),
    ("池", 7), ("鄢", 6), ("徐", 6), ("朱", 6), ("赖", 5), ("游", 5), ("苏", 5), ("单", 3), ("解", 2),
    ("仇", 2), ("区", 1), ("查", 2), ("朴", 1), ("欧阳", 2), ("司马", 1),
]

GIVEN_MALE = list("伟强磊军勇杰涛斌建明华平辉鹏飞俊峰国文志海龙波宇浩晨阳鑫雷东林亮成")
GIVEN_FEMALE = list("丽芳娟敏静燕秀英玲红霞梅琳婷雪莉萍兰凤琴慧颖洁晶佳怡欣月蓉珍")
GIVEN_ANY = list("晓春秋永德金玉建新小家子思嘉雨安")

# typed-by-ear substitutions (same or near-same reading)
HOMOPHONES = {
    "伟": "玮", "玮": "伟", "丽": "莉", "莉": "丽", "玲": "琳", "琳": "玲", "静": "婧", "明": "铭",
    "华": "桦", "平": "萍", "萍": "平", "英": "瑛", "红": "虹", "霞": "侠", "梅": "玫", "杰": "洁",
    "军": "钧", "强": "蔷", "斌": "彬", "峰": "锋", "涛": "滔", "俊": "骏", "晨": "辰", "鑫": "欣",
    "欣": "馨", "东": "冬", "林": "琳", "国": "帼", "芳": "方", "燕": "艳", "秀": "琇", "珍": "真",
}

TRADITIONAL = {
    "陈": "陳", "林": "林", "黄": "黃", "郑": "鄭", "张": "張", "刘": "劉", "杨": "楊", "许": "許",
    "蔡": "蔡", "叶": "葉", "谢": "謝", "卢": "盧", "苏": "蘇", "伟": "偉", "华": "華", "军": "軍",
    "国": "國", "丽": "麗", "兰": "蘭", "凤": "鳳", "红": "紅", "云": "雲", "龙": "龍", "东": "東",
    "鹏": "鵬", "飞": "飛", "涛": "濤", "斌": "斌", "俊": "俊", "霞": "霞", "静": "靜", "琴": "琴",
    "宁": "寧", "强": "強", "杰": "傑", "阳": "陽", "晓": "曉", "发": "發", "娟": "娟",
}

# a few minority names kept whole, with the interpunct ·
MINORITY_NAMES = ["阿依古丽·买买提", "古丽娜尔·吐尔逊", "扎西·多吉", "买买提·艾力", "热依拉·艾山"]


class NameMaker:
    def __init__(self, rng: random.Random):
        self.rng = rng
        self._surnames = [s for s, _ in SURNAMES]
        self._weights = [w for _, w in SURNAMES]

    def surname(self) -> str:
        return self.rng.choices(self._surnames, self._weights)[0]

    def given(self, sex: str) -> str:
        pool = GIVEN_MALE if sex == "1" else GIVEN_FEMALE
        first = self.rng.choice(pool + GIVEN_ANY)
        if self.rng.random() < 0.3:  # single-character given names are common among the elderly
            return first
        second = self.rng.choice(pool)
        return first + second if second != first else first + self.rng.choice(GIVEN_ANY)

    def full(self, sex: str, surname: str | None = None) -> str:
        if self.rng.random() < 0.002:
            return self.rng.choice(MINORITY_NAMES)
        return (surname or self.surname()) + self.given(sex)


def homophone(name: str, rng: random.Random) -> str | None:
    """Swap one character of the given name for a homophone; None if no character has one."""
    positions = [i for i, ch in enumerate(name) if i > 0 and ch in HOMOPHONES]
    if not positions:
        return None
    i = rng.choice(positions)
    return name[:i] + HOMOPHONES[name[i]] + name[i + 1:]


def traditional(name: str) -> str | None:
    out = "".join(TRADITIONAL.get(ch, ch) for ch in name)
    return out if out != name else None


def spaced(name: str, rng: random.Random) -> str:
    """Spaces or full-width spaces typed into the name (张 三, 张　三, trailing space)."""
    if "·" in name or len(name) < 2:
        return name + " "
    sep = rng.choice([" ", "\u3000", "  "])
    return name[0] + sep + name[1:]


def _surname_length(name: str) -> int:
    return 2 if name[:2] in {s for s, _ in SURNAMES if len(s) == 2} else 1


def char_dropped(name: str, rng: random.Random) -> str | None:
    """One character of a two-character given name dropped (林晓明 → 林明 or 林晓); None for a one-character given
    name (nothing would be left) or a minority name."""
    if "·" in name:
        return None
    n = _surname_length(name)
    given = name[n:]
    if len(given) < 2:
        return None
    i = rng.randrange(len(given))
    return name[:n] + given[:i] + given[i + 1:]


def char_added(name: str, sex: str, rng: random.Random) -> str | None:
    """A character added to a one-character given name (林明 → 林晓明 or 林明华), as a clerk completes a name
    they half heard; None for longer given names or a minority name."""
    if "·" in name:
        return None
    n = _surname_length(name)
    given = name[n:]
    if len(given) != 1:
        return None
    extra = rng.choice(GIVEN_ANY + (GIVEN_MALE if sex == "1" else GIVEN_FEMALE))
    if extra == given:
        return None
    return name[:n] + (extra + given if rng.random() < 0.5 else given + extra)
