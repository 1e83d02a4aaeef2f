"""A small, self-contained copy of the domain data for tests.

The shipped jurisdictions, agencies, SLA rules and calendar are copied as they are; the matters
and responsibility assignments are replaced by a handful of fixtures, so these tests do not move
when the real dispatch catalogue grows.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

SHIPPED = Path(__file__).resolve().parents[2] / "config" / "data"


def _matter(code: str, name: str, domain: str, kind: str, law: str, article: str) -> dict:
    return {
        "code": code,
        "name": name,
        "domain": domain,
        "kind": kind,
        "description": f"{name}的测试事项。",
        "keywords": [name],
        "phrasings": [f"{name}{n}" for n in range(5)],
        "details": [f"细节{n}" for n in range(5)],
        "examples": ["您好，" + "这是一条用于测试的完整工单样例，描述了具体的时间地点和诉求。" * 3] * 2,
        "powers": [
            {"name": f"{name}的行政处罚", "type": "行政处罚", "law": law, "article": article},
            {"name": f"{name}的行政检查", "type": "行政检查", "law": law, "article": ""},
        ],
    }


MATTERS = [
    _matter(
        "TST-001", "占道经营", "城乡建设", "urban_management", "《城市市容和环境卫生管理条例》", "第三十六条"
    ),
    _matter(
        "TST-002",
        "餐饮油烟",
        "环境保护",
        "ecology_environment",
        "《中华人民共和国大气污染防治法》",
        "第一百一十八条",
    ),
    _matter("TST-003", "缺斤短两", "商贸旅游", "market_regulation", "《中华人民共和国计量法》", ""),
    _matter("TST-004", "邻里噪声", "政法", "public_security", "《中华人民共和国治安管理处罚法》", ""),
]

ASSIGNMENTS = {
    "BH": [
        {
            "id": "T-BH-1",
            "matters": ["TST-001"],
            "note": "街镇综合执法，2025 年上收",
            "periods": [
                {"from": "2014-08-07", "to": "2025-08-24", "holder": "STREET", "delegated_by": "BH-CGW"},
                {"from": "2025-08-25", "holder": "BH-CGW"},
            ],
        },
        {
            "id": "T-BH-2",
            "matters": ["TST-002"],
            "periods": [
                {"from": "2023-01-01", "holders": [{"agency": "BH-STHJ", "lead": True}, {"agency": "BH-CGW"}]}
            ],
        },
    ],
    "TEDA": [],
    "DL": [],
}


def build(tmp_path: Path) -> Path:
    """Write the fixture data set under tmp_path and return its folder."""
    data = tmp_path / "data"
    data.mkdir()
    for name in ("jurisdictions.yaml", "agencies.yaml", "sla.yaml"):
        shutil.copy(SHIPPED / name, data / name)
    shutil.copytree(SHIPPED / "calendar", data / "calendar")
    (data / "matters").mkdir()
    write(data / "matters" / "fixtures.yaml", MATTERS)
    (data / "responsibility").mkdir()
    for code, assignments in ASSIGNMENTS.items():
        shipped = yaml.safe_load((SHIPPED / "responsibility" / f"{code}.yaml").read_text(encoding="utf-8"))
        shipped["assignments"] = assignments
        write(data / "responsibility" / f"{code}.yaml", shipped)
    return data


def write(path: Path, content: object) -> None:
    path.write_text(yaml.safe_dump(content, allow_unicode=True, sort_keys=False), encoding="utf-8")


def read(path: Path) -> object:
    return yaml.safe_load(path.read_text(encoding="utf-8"))
