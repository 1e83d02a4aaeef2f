"""Training corpus of the matter classifier: catalogue examples, hand-written tickets, generated tickets.

Everything here was written by this team; nothing is copied from citizen data (``../shared/data``),
and ``tests/unit/test_corpus.py`` guards that no 20-character window of the corpus occurs there.

For every matter of the dispatch catalogue the corpus holds

* the matter's own ``examples`` (source ``"catalogue"``),
* the tickets of ``classifier/handwritten/*.jsonl`` labelled with its code (source ``"handwritten"``),
* generated tickets (source ``"generated"``) until the matter has ``per_matter`` distinct texts,

plus the hand-written tickets labelled :data:`NONE_LABEL` (thanks to the operator, wrong numbers,
questions answered at intake): the classifier treats that label as "not routable".

The generator composes a ticket from the matter's phrasings, details, keywords, name and description
and from the shared building blocks of ``classifier/corpus_parts.yaml`` (openings, addresses, shops,
times, anger, politeness, typos …) through one of several skeletons: a terse line, a web form, a phone
call, a call-centre transcription, a structured form, a message-board letter, a consultation, a
follow-up, a rambling dialect call and a call on someone's behalf. Some tickets carry a short secondary
complaint taken from another matter (the label stays the main matter) and some get typos.

Determinism: every matter has its own ``random.Random`` seeded from sha256(seed, code), matters are
processed in code order and all building blocks are ordered lists, so the same catalogue and seed give
the same corpus on every machine and Python run (no ``hash()``, no set iteration, no global RNG).
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from models.domain import Matter

__all__ = [
    "HANDWRITTEN_DIR",
    "MAX_LEN",
    "MIN_LEN",
    "NONE_LABEL",
    "PARTS_FILE",
    "Example",
    "build_corpus",
    "catalogue_matters",
    "corpus_hash",
    "load_handwritten",
    "read_jsonl",
    "write_jsonl",
]

log = logging.getLogger(__name__)

PARTS_FILE = Path(__file__).with_name("corpus_parts.yaml")
HANDWRITTEN_DIR = Path(__file__).with_name("handwritten")
NONE_LABEL = "NONE"
MIN_LEN, MAX_LEN = 20, 600
SOURCES = ("generated", "handwritten", "catalogue")


@dataclass(frozen=True)
class Example:
    """One labelled ticket text; ``matter`` is a catalogue code or :data:`NONE_LABEL`."""

    text: str
    matter: str
    source: str  # "generated" | "handwritten" | "catalogue"


# --------------------------------------------------------------------------------------------------
# I/O helpers


def write_jsonl(examples: Iterable[Example], path: Path | str) -> None:
    """Write examples as JSON lines (UTF-8, Chinese kept readable)."""
    with Path(path).open("w", encoding="utf-8") as fh:
        for ex in examples:
            row = {"matter": ex.matter, "text": ex.text, "source": ex.source}
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path | str, *, default_source: str = "generated") -> list[Example]:
    """Read JSON lines written by :func:`write_jsonl` (or hand-written ``{"matter", "text"}`` lines)."""
    out: list[Example] = []
    with Path(path).open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                out.append(
                    Example(str(row["text"]), str(row["matter"]), str(row.get("source", default_source)))
                )
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{lineno}: bad corpus line ({exc})") from exc
    return out


def load_handwritten(directory: Path | str = HANDWRITTEN_DIR) -> list[Example]:
    """All hand-written tickets, files in name order, lines in file order."""
    base = Path(directory)
    out: list[Example] = []
    files = sorted(base.glob("*.jsonl")) if base.is_dir() else []
    if not files:
        # e.g. an installed wheel without *.jsonl package data: the corpus loses NONE and hand-written texts
        log.warning("no hand-written tickets found in %s", base)
    for path in files:
        out.extend(Example(ex.text.strip(), ex.matter, "handwritten") for ex in read_jsonl(path))
    return out


def corpus_hash(examples: Sequence[Example]) -> str:
    """sha256 over the sorted ``text<TAB>label`` lines: independent of order and of ``source``."""
    lines = sorted(f"{ex.text}\t{ex.matter}" for ex in examples)
    return hashlib.sha256("\n".join(lines).encode("utf-8")).hexdigest()


def catalogue_matters(data_dir: Path | str | None = None) -> list[Matter]:
    """The catalogue's matters via ``config.catalogue``; falls back to reading ``matters/*.yaml``.

    The fallback keeps the corpus buildable while the rest of the domain data (agencies,
    responsibility lists) is being edited and the full loader refuses to build.
    """
    try:
        from config.catalogue import load_catalogue

        return list(load_catalogue(data_dir).matters.values())
    except Exception:  # any loader problem: the matter files alone are enough for the corpus
        base = Path(data_dir) if data_dir else Path(__file__).resolve().parent.parent / "config" / "data"
        return _read_matter_files(base / "matters")


def _read_matter_files(directory: Path) -> list[Matter]:
    matters: list[Matter] = []
    for path in sorted(directory.glob("*.yaml")):
        for raw in yaml.safe_load(path.read_text(encoding="utf-8")) or []:
            if not isinstance(raw, dict) or "code" not in raw:
                continue
            matters.append(
                Matter(
                    code=str(raw["code"]),
                    name=str(raw.get("name", "")),
                    domain=str(raw.get("domain", "")),
                    kind=str(raw.get("kind", "")),
                    description=str(raw.get("description", "")),
                    keywords=tuple(str(x) for x in raw.get("keywords") or ()),
                    phrasings=tuple(str(x) for x in raw.get("phrasings") or ()),
                    details=tuple(str(x) for x in raw.get("details") or ()),
                    examples=tuple(str(x) for x in raw.get("examples") or ()),
                    source=path.name,
                )
            )
    return matters


# --------------------------------------------------------------------------------------------------
# Generator


@lru_cache(maxsize=4)
def _load_parts(path: str) -> dict[str, Any]:
    data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping of building-block lists")
    return data


def _rng_for(seed: int, code: str) -> random.Random:
    # sha256, not hash(): str hashes are salted per process (PYTHONHASHSEED)
    digest = hashlib.sha256(f"{seed}:{code}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))


_CN_DIGITS = "零一二三四五六七八九"
_END_PUNCT = "。！？!?…"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
# 某X in catalogue sentences becomes an invented name; these continuations are ordinary words.
_MOU = re.compile(r"某(?!些|项|种|个|位|专家|天|人|某|局|街道|一)")
_MONEY_HINT = re.compile(r"费|钱|工资|补贴|津贴|价|退|元|报销|收费|押金|罚|贷|税|补偿|卡")


def _cn_number(n: int) -> str:
    """1..99 in Chinese numerals (二十三, 十五)."""
    if n < 10:
        return _CN_DIGITS[n]
    tens, ones = divmod(n, 10)
    head = "" if tens == 1 else _CN_DIGITS[tens]
    return f"{head}十{_CN_DIGITS[ones] if ones else ''}"


def _sentence(text: str, end: str = "。") -> str:
    text = text.strip().rstrip("，,、；;")
    return text if not text or text[-1] in _END_PUNCT else text + end


class _Generator:
    """Composes tickets for one matter with one RNG; ``others`` feed secondary complaints."""

    def __init__(self, matter: Matter, others: Sequence[Matter], parts: dict[str, Any], rng: random.Random):
        self.m = matter
        self.others = others
        self.p = parts
        self.rng = rng
        self.money_ish = bool(_MONEY_HINT.search(matter.name + matter.description + "".join(matter.keywords)))
        # (skeleton, weight): weights shape the length spread (terse/web short, letters long)
        self.skeletons: list[tuple[Callable[[], tuple[str, str]], int]] = [
            (self.terse, 10),
            (self.web_short, 9),
            (self.call, 20),
            (self.transcript, 15),
            (self.structured, 5),
            (self.letter, 17),
            (self.consult, 8),
            (self.followup, 6),
            (self.ramble, 5),
            (self.proxy, 5),
        ]
        # skeletons whose tickets may carry a secondary complaint of another matter
        self.multi_ok = {self.call, self.transcript, self.letter, self.followup, self.ramble, self.proxy}

    # ---- primitives ----------------------------------------------------------------------------
    def pick(self, key: str) -> str:
        return str(self.rng.choice(self.p[key]))

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def num(self, lo: int, hi: int) -> str:
        n = self.rng.randint(lo, hi)
        return _cn_number(n) if n < 100 and self.chance(0.4) else str(n)

    def fill(self, template: str) -> str:
        return _PLACEHOLDER.sub(lambda mo: self.slot(mo.group(1)), template)

    def slot(self, name: str) -> str:
        makers: dict[str, Callable[[], str]] = {
            "estate": self.estate,
            "place": self.place,
            "building": self.building,
            "company": self.company,
            "name": self.person,
            "surname": lambda: self.pick("surnames"),
            "official": lambda: self.pick("officials"),
            "ticket": lambda: f"{self.rng.randint(2023, 2025)}{self.rng.randint(10**7, 10**8 - 1)}",
            "money": self.money,
            "phone": self.phone,
            "years": lambda: _cn_number(self.rng.randint(3, 30)),
            "age": lambda: _cn_number(self.rng.randint(60, 89)),
        }
        maker = makers.get(name)
        return maker() if maker else "{" + name + "}"

    # ---- invented places, names, numbers --------------------------------------------------------
    def estate(self) -> str:
        return self.pick("estate_heads") + self.pick("estate_tails")

    def road(self) -> str:
        return self.pick("road_heads") + self.pick("road_tails")

    def village(self) -> str:
        return self.pick("village_names") + "村"

    def building(self) -> str:
        b, u = self.rng.randint(1, 28), self.rng.randint(1, 6)
        return self.rng.choice(
            [f"{b}号楼{u}门", f"{b}栋{u}单元", f"{b}号楼", f"{b}-{u}-{self.rng.randint(101, 1802)}"]
        )

    def shop(self) -> str:
        return self.pick("brands") + self.pick("shop_kinds")

    def company(self) -> str:
        head = self.rng.choice(["天津", "天津市", "滨海", ""])
        return head + self.pick("brands") + self.pick("company_kinds")

    def person(self) -> str:
        return self.pick("surnames") + self.pick("honorifics")

    def phone(self) -> str:
        return f"{self.pick('phone_heads')}****{self.rng.randint(0, 9999):04d}"

    def money(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return f"{self.rng.randint(3, 99) * 100}元"
        if r < 0.55:
            return f"{_cn_number(self.rng.randint(2, 9))}千多块钱"
        if r < 0.75:
            return f"{self.rng.randint(1, 30)}万{self.rng.choice(['', '多'])}元"
        return f"{self.rng.randint(1200, 86000)}元"

    def date(self) -> str:
        y, mo = self.rng.randint(2022, 2025), self.rng.randint(1, 12)
        r = self.rng.random()
        if r < 0.35:
            return f"{y}年{mo}月{self.rng.randint(1, 28)}日"
        if r < 0.7:
            return f"{y}年{mo}月{self.rng.choice(['起', '份', '初', '底', '中旬'])}"
        return f"去年{_cn_number(mo)}月份"

    def when(self) -> str:
        r = self.rng.random()
        if r < 0.3:
            return self.pick("times_when")
        if r < 0.55:
            return self.pick("times_since")
        if r < 0.8:
            return self.pick("times_habit")
        return self.date()

    def tj_place(self) -> str:
        area, street = self.pick("tj_areas"), self.pick("tj_streets")
        forms = [
            lambda: f"{area}{street}{self.estate()}",
            lambda: f"{area}{self.road()}{self.rng.randint(1, 999)}号",
            lambda: f"{area}{self.road()}与{self.road()}交口",
            lambda: f"{street}{self.estate()}{self.building()}",
            lambda: f"{area}{street}{self.village()}",
            lambda: self.estate(),
            lambda: f"{area}{self.road()}{self.shop()}门口",
            lambda: f"{self.estate()}{self.rng.choice(['南门', '北门', '东侧', '西边', '对面', '底商'])}",
        ]
        return self.rng.choice(forms)()

    def anon_place(self) -> str:
        letter = self.pick("anon_city_letters")
        county = f"{self.pick('anon_city_letters')}{self.rng.randint(1, 9)}"
        forms = [
            lambda: f"{letter}市{county}区{self.estate()}",
            lambda: f"{county}县{self.pick('anon_towns')}镇{self.village()}",
            lambda: f"{letter}{self.rng.randint(1, 9)}市{self.road()}",
            lambda: f"{letter}市{county}区{self.road()}{self.rng.randint(1, 300)}号",
            lambda: f"{county}县{self.estate()}",
            lambda: f"{letter}市{county}县",
        ]
        return self.rng.choice(forms)()

    def place(self, anon_share: float = 0.25) -> str:
        return self.anon_place() if self.chance(anon_share) else self.tj_place()

    # ---- the matter's own material -------------------------------------------------------------
    def localize(self, text: str) -> str:
        """Replace the catalogue's 某小区/某路/某公司 with invented names (sometimes keep 某)."""
        if "某" not in text or self.chance(0.25):
            return text

        def repl(mo: re.Match[str]) -> str:
            rest = text[mo.end() : mo.end() + 2]
            if rest.startswith("小区"):
                return self.pick("estate_heads")
            if rest.startswith("村"):
                return self.pick("village_names")
            if rest[:1] in ("路", "道"):
                return self.pick("road_heads")
            if rest.startswith("镇"):
                return self.pick("anon_towns")
            return self.pick("brands")

        return _MOU.sub(repl, text)

    def phrasing(self) -> str:
        return self.localize(self.rng.choice(self.m.phrasings))

    def details(self, k: int) -> list[str]:
        k = min(k, len(self.m.details))
        return [self.localize(d) for d in self.rng.sample(list(self.m.details), k)]

    def keyword(self) -> str:
        return self.rng.choice(self.m.keywords) if self.m.keywords else self.m.name

    def description_head(self) -> str:
        """The description's first clause when it is short enough to sound like a citizen; else the name."""
        head = re.split(r"[，；。]", self.m.description)[0]
        return head if 6 <= len(head) <= 26 and "、" not in head else self.m.name

    def loss(self) -> str:
        return self.fill(self.pick("loss_phrases")) if self.money_ish and self.chance(0.45) else ""

    def closing(self) -> str:
        r = self.rng.random()
        if r < 0.35:
            return self.pick("politeness")
        if r < 0.6:
            return self.pick("anger")
        if r < 0.85:
            return _sentence(self.pick("demands"))
        return _sentence(self.pick("demands"), "，") + self.pick("politeness")

    def maybe_phone(self, p: float = 0.3) -> str:
        return self.fill(self.pick("phone_templates")) if self.chance(p) else ""

    @staticmethod
    def third_person(text: str) -> str:
        # call-centre summaries speak of the caller: 我家 -> 其家, 我们小区 -> 其小区
        return text.replace("我们", "其").replace("我家", "其家").replace("我", "其")

    # ---- skeletons: each returns (body, ending); a secondary complaint goes between ----------
    def terse(self) -> tuple[str, str]:
        ph = self.phrasing()
        r = self.rng.random()
        if r < 0.35:
            return ph, ""
        if r < 0.6:
            return f"{self.place()}，{ph}", ""
        if r < 0.8:
            return ph, "，" + self.pick("demands")
        return _sentence(ph, "！"), self.pick("anger")

    def web_short(self) -> tuple[str, str]:
        head = self.pick("openings_web")
        where = self.rng.choice([self.place(), self.shop(), f"{self.place()}的{self.shop()}"])
        body = f"{head}{where}，{_sentence(self.phrasing(), self.rng.choice(['！', '。']))}"
        if self.chance(0.5):
            body += _sentence(self.details(1)[0])
        return body, self.closing() + self.maybe_phone(0.2)

    def call(self) -> tuple[str, str]:
        parts = [self.pick("openings_call")]
        if self.chance(0.3):
            parts.append(f"我姓{self.pick('surnames')}，")
        parts.append(
            self.rng.choice([f"我住在{self.place()}，", f"在{self.place()}这边，", f"{self.place()}，", ""])
        )
        parts.append(_sentence(self.phrasing()))
        dets = self.details(self.rng.randint(1, 3))
        parts.append(_sentence(f"{self.when()}，{dets[0]}" if self.chance(0.5) else dets[0]))
        parts.extend(_sentence(d) for d in dets[1:])
        loss = self.loss()
        if loss:
            parts.append(_sentence(loss))
        if self.chance(0.4):
            parts.append(_sentence(self.pick("durations"), "，") + _sentence(self.pick("history")))
        return "".join(parts), self.closing() + self.maybe_phone()

    def transcript(self) -> tuple[str, str]:
        head = ""
        if self.chance(0.25):
            head = f"关于{self.rng.choice([self.place(), ''])}{self.rng.choice([self.m.name, self.keyword()])}的问题。"
        prefix = self.fill(self.pick("transcript_prefixes"))
        ph = self.phrasing()
        dets = self.details(self.rng.randint(1, 3))
        if self.chance(0.6):
            ph, dets = self.third_person(ph), [self.third_person(d) for d in dets]
        body = f"{head}{prefix}{self.place()}，{_sentence(ph)}" + "".join(_sentence(d) for d in dets)
        if self.chance(0.4):
            body += _sentence(f"该问题{self.pick('durations')}")
        demand = self.pick("transcript_demand_heads") + _sentence(self.pick("demands"))
        tail = self.pick("transcript_tails") if self.chance(0.6) else ""
        return body, demand + tail

    def structured(self) -> tuple[str, str]:
        sep = self.rng.choice(["；", "\n", "。"])
        fields = [
            f"{self.rng.choice(['地址', '反映地址', '位置'])}：{self.place()}",
            f"{self.rng.choice(['问题', '反映内容', '情况'])}：{self.phrasing()}，{self.details(1)[0]}",
            f"{self.rng.choice(['时间', '发生时间'])}：{self.when()}",
        ]
        if self.chance(0.4):
            fields.append(f"联系人：{self.person()} {self.phone()}")
        body = sep.join(fields) + sep
        return body, f"{self.rng.choice(['诉求', '要求'])}：{_sentence(self.pick('demands'))}"

    def letter(self) -> tuple[str, str]:
        anon = self.chance(0.5)
        place = self.place(0.7 if anon else 0.1)
        kw = self.keyword()
        title = self.rng.choice(
            [
                self.phrasing(),
                f"关于{place}{kw}问题的反映",
                f"{place}的{self.m.name}问题何时能解决？",
                f"强烈要求解决{kw}问题",
                f"请领导关注{place}{kw}的问题",
            ]
        )
        salutation = self.fill(self.pick("salutations"))
        intro = self.fill(self.pick("self_intros"))
        # message-board titles run straight into the salutation (no separator) about half the time
        head = f"{title}{salutation}" if self.chance(0.5) else f"{_sentence(title, ' ')}\n{salutation}"
        long_form = self.chance(0.4)  # real message-board letters are often long: spread up to ~600
        dets = self.details(self.rng.randint(4, 6) if long_form else self.rng.randint(2, 4))
        split = self.rng.randint(1, len(dets))
        para1 = (
            f"{intro}{self.pick('letter_openers')}"
            f"{self.date()}{self.rng.choice(['以来', '开始', '前后', ''])}，"
            f"{_sentence(self.phrasing())}{''.join(_sentence(d) for d in dets[:split])}"
        )
        para2_parts = [_sentence(d) for d in dets[split:]]
        if long_form:
            para2_parts.append(
                f"{self.rng.choice(['更过分的是', '还有', '不光这样'])}，{_sentence(self.phrasing())}"
            )
        summary = self.description_head()
        if self.chance(0.5):
            para2_parts.append(
                self.rng.choice(
                    [
                        f"据我们了解，{summary}这种情况是有明确规定要管的。",
                        f"我们这里的问题说白了就是{summary}。",
                        f"我们查了相关规定，{kw}这类问题是有部门负责的。",
                        f"{self.m.name}的问题不是我们一家的事。",
                    ]
                )
            )
        loss = self.loss()
        if loss:
            para2_parts.append(_sentence(loss))
        if self.chance(0.6):  # a timeline of earlier attempts, typical of message-board letters
            ch1, ch2 = self.rng.sample(self.p["letter_channels"], 2)
            res1, res2 = self.rng.sample(self.p["letter_results"], 2)
            d1, d2 = sorted([self.date(), self.date()])
            para2_parts.append(f"{d1}，我们{ch1}，{res1}；{d2}又{ch2}，{res2}。")
        else:
            para2_parts.append(_sentence(f"此事{self.pick('durations')}，{self.pick('history')}"))
        para2_parts.extend(self.rng.sample(self.p["letter_impacts"], 2 if long_form else 1))
        if self.chance(0.4):
            para2_parts.append(self.pick("anger"))
        body = f"{head}{self.rng.choice(['', chr(10)])}{para1}\n{''.join(para2_parts)}\n"
        sign = self.fill(self.pick("signoffs")) if self.chance(0.6) else ""
        ending = self.pick("letter_asks") + self.pick("letter_closings")
        if long_form and self.chance(0.6):  # numbered demands, as many letters end
            asks = self.rng.sample(self.p["demands"], 3)
            ending = (
                "具体诉求如下："
                + "；".join(f"{n}、{a}" for n, a in zip("一二三", asks, strict=True))
                + "。"
                + ending
            )
        if sign:
            ending += f"\n{sign}" + (f" {self.date()}" if self.chance(0.5) else "")
        return body, ending

    def consult(self) -> tuple[str, str]:
        ph = self.phrasing()
        context = _sentence(self.details(1)[0]) if self.chance(0.6) else ""
        if ph.endswith(("？", "吗", "么", "呢")) or "怎么" in ph:
            return f"{self.pick('consult_heads')}{context}{_sentence(ph, '？')}", self.maybe_phone(0.2)
        return f"{self.pick('consult_heads')}{context}{_sentence(ph, '，')}", self.pick("consult_tails")

    def followup(self) -> tuple[str, str]:
        head = self.fill(self.pick("followup_heads"))
        body = f"{head}{self.place()}，{_sentence(self.phrasing())}{_sentence(self.details(1)[0])}"
        body += _sentence(self.pick("history"), "！")
        return body, self.pick("anger") + self.rng.choice(["", _sentence(self.pick("demands"))])

    def ramble(self) -> tuple[str, str]:
        pieces = [self.rng.choice(["喂", "哎", "你好", "那个"]), self.pick("fillers"), self.place(), "这块"]
        pieces += [self.phrasing(), self.pick("fillers")]
        pieces += self.details(self.rng.randint(1, 2))
        if self.chance(0.6):
            pieces.append(self.pick("dialect"))
        pieces.append(self.pick("fillers"))
        sep = self.rng.choice([" ", "，", " ", ""])
        return sep.join(pieces), sep + self.rng.choice(["你们给管管吧", "赶紧来人看看", "就这事", "麻烦了啊"])

    def proxy(self) -> tuple[str, str]:
        body = f"{self.pick('proxy_intros')}{self.place()}，{_sentence(self.phrasing())}"
        body += "".join(_sentence(d) for d in self.details(self.rng.randint(1, 2)))
        return body, self.closing() + self.maybe_phone(0.5)

    # ---- modifiers -----------------------------------------------------------------------------
    def secondary(self) -> str:
        other = self.rng.choice(self.others)
        ph = self.localize(self.rng.choice(other.phrasings))
        return f"{self.pick('secondary_intros')}{_sentence(ph, '，')}{self.pick('secondary_tails')}".rstrip(
            "，"
        )

    def typos(self, text: str) -> str:
        if self.chance(0.3):
            for _ in range(self.rng.randint(1, 2)):
                right, wrong = self.rng.choice(self.p["typo_pairs"])
                idx = [mo.start() for mo in re.finditer(re.escape(right), text)]
                if idx:
                    i = self.rng.choice(idx)
                    text = text[:i] + wrong + text[i + len(right) :]
        r = self.rng.random()
        if r < 0.08:  # no punctuation at all, as typed on a phone in a hurry
            text = re.sub(r"[，。、；]", " ", text)
        elif r < 0.2:  # half-width punctuation mixed in
            text = text.replace("，", ",", self.rng.randint(1, 4)).replace("：", ":").replace("！", "!")
        elif r < 0.26:  # full-width digits
            text = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
        if self.chance(0.08) and len(text) > 4:
            i = self.rng.randrange(len(text) - 1)
            if "\u4e00" <= text[i] <= "\u9fff":
                text = text[: i + 1] + text[i] + text[i + 1 :]
        if self.chance(0.06):
            text = text.rstrip("。！!") + self.rng.choice(["！！！", "？？", "。。。"])
        return text

    def ticket(self) -> str:
        fns = [fn for fn, _ in self.skeletons]
        weights = [w for _, w in self.skeletons]
        fn = self.rng.choices(fns, weights)[0]
        body, ending = fn()
        extra = self.secondary() if fn in self.multi_ok and self.others and self.chance(0.15) else ""
        if extra:
            body = _sentence(body) if not body.endswith("\n") else body
            extra = _sentence(extra)
        text = (body + extra + ending).strip().rstrip("，,")
        if len(text) < MIN_LEN:
            text = _sentence(text, "，") + self.pick("politeness")
        return self.typos(text)


def build_corpus(matters: Iterable[Matter], *, per_matter: int = 40, seed: int = 12345) -> list[Example]:
    """Catalogue examples, hand-written tickets and generated tickets for every matter.

    Each matter gets at least ``per_matter`` distinct texts (fewer only if its material is too thin to
    vary, which the catalogue's minimum of 6 phrasings and 6 details rules out in practice). A text is
    never given two labels: the first occurrence (catalogue, then hand-written, then generated) wins.
    Hand-written tickets of codes not in ``matters`` are left out; those labelled ``NONE`` are always
    appended. Generated texts are 20..600 characters long.
    """
    ordered = sorted({m.code: m for m in matters}.values(), key=lambda m: m.code)
    parts = _load_parts(str(PARTS_FILE))
    handwritten = load_handwritten()
    by_code: dict[str, list[Example]] = {}
    for ex in handwritten:
        by_code.setdefault(ex.matter, []).append(ex)

    seen: dict[str, str] = {}  # text -> label, across all matters
    out: list[Example] = []

    def add(ex: Example) -> bool:
        text = ex.text.strip()
        if not text or text in seen:
            return False
        seen[text] = ex.matter
        out.append(Example(text, ex.matter, ex.source))
        return True

    # fixed texts first, so a generated ticket can never take a hand-written text's place
    fixed_counts: dict[str, int] = {}
    for m in ordered:
        n = sum(add(Example(t, m.code, "catalogue")) for t in m.examples)
        n += sum(add(ex) for ex in by_code.get(m.code, []))
        fixed_counts[m.code] = n
    for ex in by_code.get(NONE_LABEL, []):
        add(ex)

    generated: list[Example] = []
    for m in ordered:
        if not m.phrasings or not m.details:
            continue
        gen = _Generator(
            m, [o for o in ordered if o.code != m.code and o.phrasings], parts, _rng_for(seed, m.code)
        )
        have, attempts = fixed_counts[m.code], 0
        while have < per_matter and attempts < per_matter * 50:
            attempts += 1
            text = gen.ticket()
            if MIN_LEN <= len(text) <= MAX_LEN and text not in seen:
                seen[text] = m.code
                generated.append(Example(text, m.code, "generated"))
                have += 1
    return out + generated
