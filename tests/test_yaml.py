"""Strict YAML loading: positions, YAML 1.2 semantics, budgets, and round-trip edits that keep comments."""

from __future__ import annotations

from pathlib import Path

import pytest

from kfm_gitops import _yaml
from kfm_gitops.findings import Finding


def load_ok(text: str) -> _yaml.Document:
    doc = _yaml.loads(text, "f.yml")
    assert isinstance(doc, _yaml.Document), doc
    return doc


def load_bad(text: str) -> Finding:
    doc = _yaml.loads(text, "f.yml")
    assert isinstance(doc, list), doc
    assert len(doc) == 1
    return doc[0]


def test_yaml_1_2_scalars_and_timestamps_as_written() -> None:
    doc = load_ok("a: yes\nb: no\nc: 0o17\nd: 2023-01-01T00:00:00Z\ne: 2023-01-01\nf: '007'\ng: on\nh: 1_000\n")
    assert doc.data == {"a": "yes", "b": "no", "c": 15, "d": "2023-01-01T00:00:00Z", "e": "2023-01-01",
                        "f": "007", "g": "on", "h": "1_000"}
    assert all(type(v) in (str, int) for v in doc.data.values())


def test_positions_of_keys_and_values() -> None:
    doc = load_ok("# c\ntop:\n  inner: [1, {k: v}]\n  other: x\n")
    assert doc.key_positions[("top", "inner")] == (3, 3)
    assert doc.value_positions[("top", "inner")] == (3, 10)
    assert doc.value_positions[("top", "inner", 1, "k")] == (3, 18)
    assert str(doc.locate(("top", "other"))) == "f.yml:4:10"
    # A path that does not exist is located at its nearest existing ancestor.
    assert str(doc.locate(("top", "missing", 3))) == "f.yml:3:3"


def test_aliases_within_budget_are_fine() -> None:
    doc = load_ok("base: &b {x: 1}\nother: *b\n")
    assert doc.data == {"base": {"x": 1}, "other": {"x": 1}}


def test_alias_bomb_is_refused_by_counting() -> None:
    text = "a: &a [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n"
    prev = "a"
    for name in "bcdefghij":
        text += f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]\n"
        prev = name
    f = load_bad(text)
    assert f.code == "YAML_ALIAS_BUDGET"
    assert f.message == "the document expands to more than 50000 nodes"
    assert str(f.location) == "f.yml:5:20"  # the alias that crossed the budget


def test_merge_keys_work() -> None:
    doc = load_ok("base: &b {x: 1, y: 2}\nother:\n  <<: *b\n  y: 3\n")
    assert doc.data["other"] == {"x": 1, "y": 3}


@pytest.mark.parametrize(("text", "code", "where"), [
    ("a: [1\n", "YAML_SYNTAX", "f.yml:2:1"),
    ("a: 1\nb: 2\na: 3\n", "YAML_DUPLICATE_KEY", "f.yml:3:1"),
    ("a: 1\n---\nb: 1\n", "YAML_MULTIPLE_DOCUMENTS", "f.yml:2:1"),
    ("- 1\n", "YAML_NOT_MAPPING", "f.yml:1:1"),
    ("just a string\n", "YAML_NOT_MAPPING", "f.yml:1:1"),
    ("[1]: x\n", "YAML_KEY_NOT_STRING", "f.yml:1:1"),
    ("1: x\n", "YAML_KEY_NOT_STRING", "f.yml:1:1"),
    ("a: .inf\n", "YAML_NOT_FINITE", "f.yml:1:4"),
    ("a: " + "[" * 100 + "]" * 100 + "\n", "YAML_TOO_DEEP", "f.yml:1:67"),
    ("a: " + "[" * 500_000 + "]" * 500_000 + "\n", "YAML_TOO_DEEP", "f.yml:1:1003"),
    ("a: &x [1]\nb: *y\n", "YAML_SYNTAX", "f.yml:2:4"),
    ("a: !!int x\n", "YAML_TAG", "f.yml:1:4"),
    ("a: !!float 1\n", None, None),
    ("a: !!str 1\n", None, None),
    ("? [1, 2]\n: x\n", "YAML_KEY_NOT_STRING", "f.yml:1:3"),
    ("true: x\n", "YAML_KEY_NOT_STRING", "f.yml:1:1"),
    ("a: *nothing\n", "YAML_SYNTAX", "f.yml:1:4"),
    ("a: !!python/object:os.system x\n", "YAML_TAG", "f.yml:1:4"),
    ("a: !custom {x: 1}\n", "YAML_TAG", "f.yml:1:4"),
    ("# only a comment\n", "FILE_EMPTY", "f.yml:1:1"),
])
def test_bad_yaml_is_a_located_finding(text: str, code: str | None, where: str | None) -> None:
    if code is None:
        load_ok(text)
        return
    f = load_bad(text)
    assert f.code == code
    assert str(f.location) == where


def test_file_limits(tmp_path: Path) -> None:
    big = tmp_path / "big.yml"
    big.write_text("a: 1\n# " + "x" * (1024 * 1024) + "\n")
    doc = _yaml.load(big, shown="big.yml")
    assert isinstance(doc, list)
    assert doc[0].code == "FILE_TOO_LARGE"
    assert doc[0].message.endswith("is over the 1048576-byte limit for this kind of file")


def test_symlink_is_read_as_its_target(tmp_path: Path) -> None:
    target = tmp_path / "t.yml"
    target.write_text("a: 1\n")
    link = tmp_path / "l.yml"
    link.symlink_to(target)
    doc = _yaml.load(link, shown="l.yml")
    assert isinstance(doc, _yaml.Document)
    assert doc.data == {"a": 1}
    dangling = tmp_path / "d.yml"
    dangling.symlink_to(tmp_path / "gone.yml")
    bad = _yaml.load(dangling, shown="d.yml")
    assert isinstance(bad, list)
    assert bad[0].code == "FILE_NOT_FOUND"


def test_edit_keeps_comments_and_layout(tmp_path: Path) -> None:
    text = (
        "# header comment\n"
        "a: 1  # trailing\n"
        "when: 2023-01-01T00:00:00Z\n"
        "quoted: 'single'\n"
        "list:\n"
        "  - x\n"
        "  - y\n"
        "flow: {k: v}\n"
        "nested:\n"
        "  # inner comment\n"
        "  target: \"<old>\"\n"
    )
    path = tmp_path / "p.yml"
    path.write_text(text)

    def change(doc: dict[str, dict[str, str]]) -> None:
        doc["nested"]["target"] = "new-value"

    _yaml.edit(path, change)
    assert path.read_text() == text.replace('"<old>"', '"new-value"')  # even the quoting is kept
