"""The model directory: only our own version folders are ever deleted, and metadata that is JSON but
not an object is a ModelError (``hotline classify`` says so), not an AttributeError."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from classifier import model as mm
from streams.cli import app


def _version(model_dir: Path, name: str) -> Path:
    folder = model_dir / name
    folder.mkdir(parents=True)
    (folder / mm.META_FILE).write_text(json.dumps({"format": mm.FORMAT, "version": name}), encoding="utf-8")
    return folder


def test_only_our_version_folders_are_removed(tmp_path: Path) -> None:
    models = tmp_path / "models"
    old = [_version(models, f"2025010{d}T000000Z-0123abcd") for d in range(1, 5)]
    newest = _version(models, "20250301T080500Z-89abcdef")
    mm.point_current(models, old[0].name)  # an operator rolled back to the oldest: it stays
    foreign = [models / ".cache", models / "0-archive", models / "notes"]
    for f in foreign:
        f.mkdir()
        (f / mm.META_FILE).write_text("{}", encoding="utf-8")  # even with a file of our name inside
    lookalike = models / "20240101T000000Z-deadbeef"  # named like ours, but without our metadata
    lookalike.mkdir()
    mm.remove_old_versions(models, keep=2)
    assert sorted(p.name for p in models.iterdir() if p.is_dir() and not p.is_symlink()) == sorted(
        [".cache", "0-archive", "notes", lookalike.name, old[0].name, old[3].name, newest.name])
    assert (models / ".cache" / mm.META_FILE).is_file()


@pytest.mark.parametrize("content", ["[]", '"x"', "3", "null", "[" * 200_000])
def test_metadata_that_is_not_an_object_is_a_model_error(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "models" / "v1"
    folder.mkdir(parents=True)
    (folder / mm.META_FILE).write_text(content, encoding="utf-8")
    with pytest.raises(mm.ModelError, match="run `hotline train`"):
        mm.read_metadata(folder)
    (tmp_path / "models" / mm.CURRENT).symlink_to("v1")
    result = CliRunner().invoke(app, ["classify", "路灯不亮"], env={
        "HOTLINE_MODEL_DIR": str(tmp_path / "models"), "HOTLINE_DATA_DIR": str(tmp_path / "var")})
    assert result.exit_code == 2 and result.exception is not None and isinstance(result.exception, SystemExit)
    assert "hotline train" in result.output
