#!/usr/bin/env python3
"""Keep code in docs/ identical to the tested files it shows (as Airflow's provider docs include examples).

In a Markdown file, a line ``<!-- include: PATH -->`` or ``<!-- include: PATH#NAME -->`` must be followed by a
fenced code block; the block holds the file (or the lines between ``[START NAME]`` and ``[END NAME]``
markers in it). ``python scripts/sync_docs.py`` rewrites the blocks; tests/test_docs.py fails when they
differ, so documentation can't drift from the code and YAML that tests exercise.

docs/connectors.md also holds the reference of every source YAML key, generated here from the pydantic models
of ``countyhealth.connectors.typing`` (and the built-in kinds' own) between ``<!-- reference:start -->`` and
``<!-- reference:end -->``: a field without a description fails, so no key goes undocumented.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_INCLUDE = re.compile(r"^<!-- include: (?P<path>[^#\s]+)(?:#(?P<name>[\w-]+))? -->\n```(?P<lang>\w*)\n(?P<body>.*?)^```",
                      re.M | re.S)


def snippet(path: str, name: str | None) -> str:
    text = (ROOT / path).read_text(encoding="utf-8")
    if name is None:
        return text
    m = re.search(rf"^[^\n]*\[START {re.escape(name)}\][^\n]*\n(?P<body>.*?)^[^\n]*\[END {re.escape(name)}\]", text,
                  re.M | re.S)
    if not m:
        raise KeyError(f"{path}: no [START {name}] … [END {name}] markers")
    return m.group("body")


def sync(doc: Path, *, write: bool) -> list[str]:
    """Return the includes that differ; with ``write`` rewrite them."""
    text = doc.read_text(encoding="utf-8")
    stale: list[str] = []

    def replace(m: re.Match) -> str:
        want = snippet(m.group("path"), m.group("name"))
        if not want.endswith("\n"):
            want += "\n"
        if m.group("body") != want:
            stale.append(f"{doc.relative_to(ROOT)}: {m.group('path')}" + (f"#{m.group('name')}" if m.group("name") else ""))
        head = m.group(0).split("\n", 1)[0]
        return f"{head}\n```{m.group('lang')}\n{want}```"

    new = _INCLUDE.sub(replace, text)
    if write and new != text:
        doc.write_text(new, encoding="utf-8")
    return stale


REFERENCE = re.compile(r"(<!-- reference:start -->\n)(.*?)(<!-- reference:end -->)", re.S)


class UndocumentedKey(ValueError):
    """A config field has no description: the key reference would leave it unexplained."""


def _type_name(annotation) -> str:
    import datetime as dt
    import typing

    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type_name(args[0])
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        names = [_type_name(a) for a in args if a is not type(None)]
        return " or ".join(dict.fromkeys(names))
    if origin is typing.Literal:
        return " \\| ".join(f"`{a}`" for a in args)
    if origin is list:
        return f"list of {_type_name(args[0])}"
    if origin is dict:
        return "mapping"
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return "mapping"
    return {str: "text", int: "integer", float: "number", bool: "true/false", dt.timedelta: "duration (30s, 15m, 2h, 7d)",
            dt.datetime: "date-time"}.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _default(field) -> str:
    from pydantic import BaseModel
    from pydantic_core import PydanticUndefined

    if field.is_required():
        return "required"
    value = field.default_factory() if field.default_factory is not None else field.default
    if value is PydanticUndefined or value is None or value == {} or value == []:
        return ""
    if isinstance(value, BaseModel):
        return "see below" if value.model_fields_set or value.model_dump() else ""
    if hasattr(value, "total_seconds"):
        secs = int(value.total_seconds())
        for unit, n in (("d", 86400), ("h", 3600), ("m", 60)):
            if secs % n == 0:
                return f"`{secs // n}{unit}`"
        return f"`{secs}s`"
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    return f"`{value}`"


def _models_in(annotation, *, in_lists: bool = False):
    """Model classes an annotation holds (a model, an optional one, a union of them; with ``in_lists`` also the
    items of a list) — never a dict's values, which are documented on their own."""
    import typing

    from pydantic import BaseModel

    origin, args = typing.get_origin(annotation), typing.get_args(annotation)
    if origin is typing.Annotated:
        return _models_in(args[0], in_lists=in_lists)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        return [m for a in args for m in _models_in(a, in_lists=in_lists)]
    if origin is list and in_lists:
        return _models_in(args[0])
    return [annotation] if isinstance(annotation, type) and issubclass(annotation, BaseModel) else []


def _doc(text: str | None) -> str:
    return " ".join((text or "").split()).replace("``", "`")


def _rows(model, prefix: str = "", skip: tuple = (), flat: tuple = ()) -> list[tuple[str, str, str, str]]:
    """(key, type, default, meaning) of every field, nested models expanded (not those named in ``flat``)."""
    out = []
    for name, field in model.model_fields.items():
        if name in skip or field.exclude:
            continue
        key = f"{prefix}{field.alias or name}"
        if not field.description:
            raise UndocumentedKey(f"{model.__module__}.{model.__name__}.{name} has no description — give its "
                                  "Field(...) a description: it is the key's entry in docs/connectors.md")
        out.append((key, _type_name(field.annotation), _default(field), _doc(field.description)))
        if name in flat:
            continue
        import typing

        listed = typing.get_origin(field.annotation) is list
        variants = _models_in(field.annotation, in_lists=True)
        sub = f"{key}[]." if listed else f"{key}."
        if len(variants) == 1:
            out.extend(_rows(variants[0], sub, skip=("type",) if "type" in variants[0].model_fields else ()))
        elif variants:
            common = [n for n in variants[0].model_fields if n != "type" and all(
                n in v.model_fields and v.model_fields[n].description == variants[0].model_fields[n].description
                for v in variants)]
            out.extend(_rows(variants[0], sub, skip=tuple(n for n in variants[0].model_fields if n not in common)))
            for v in variants:
                out.append((f"{sub}type: {typing_literal(v)}", "", "", _doc((v.__doc__ or "").split("\n\n")[0])
                            or "(no further keys)"))
                out.extend(_rows(v, sub, skip=("type", *common)))
    return out


def typing_literal(model) -> str:
    import typing

    return typing.get_args(model.model_fields["type"].annotation)[0]


def key_reference() -> str:
    """The reference of every source YAML key, as Markdown tables (one per kind of thing)."""
    from countyhealth.connectors import typing as t
    from countyhealth.connectors.hl7 import Hl7Source, Hl7Stream

    def table(title: str, rows) -> str:
        lines = [f"#### {title}", "", "| key | type | default | meaning |", "| --- | --- | --- | --- |"]
        for key, kind, default, doc in rows:
            cell = doc.replace("|", "\\|")
            lines.append(f"| `{key}` | {kind} | {default} | {cell} |")
        return "\n".join(lines) + "\n"

    def own(model, base) -> tuple:
        """The fields a kind's model adds or redefines (the inherited ones are in the tables of every source)."""
        def same(a, b) -> bool:
            return (a.annotation, a.description, a.is_required()) == (b.annotation, b.description, b.is_required())

        return tuple(n for n, f in model.model_fields.items() if n in base.model_fields and same(f, base.model_fields[n]))

    parts = [
        table("Every source", _rows(t.SourceBase, skip=("streams",)) + [
            ("streams.NAME", "mapping", "required", "a stream: the keys of every stream, plus its kind's")]),
        table("Every stream (`streams.NAME.…`)", _rows(t.StreamBase, skip=("fields", "maps")) + [
            ("fields.FIELD", "text or mapping", "", "a canonical field filled from a source column: `FIELD: COLUMN`, "
             "or a field mapping (below)"),
            ("maps", "list of mapping", "", "several canonical datasets from one stream: each a map (below)")]),
        table("A field mapping (`fields.FIELD: {…}`)", _rows(t.FieldSpec)),
        table("A map (`maps: [{…}]`)", _rows(t.DatasetMap)),
    ]
    for kind, source, stream in [("sql", t.SqlSource, t.SqlStream), ("rest", t.RestSource, t.RestStream),
                                 ("file", t.FileSource, t.FileStream), ("hl7", Hl7Source, Hl7Stream)]:
        src_rows = _rows(source, skip=own(source, t.SourceBase) + ("kind", "streams"), flat=("connection",))
        if src_rows:
            parts.append(table(f"`kind: {kind}` — the source", src_rows))
        parts.append(table(f"`kind: {kind}` — each stream", _rows(stream, skip=own(stream, t.StreamBase),
                                                                   flat=("paginator",))))
    return "\n".join(parts)


def sync_reference(doc: Path, *, write: bool) -> list[str]:
    text = doc.read_text(encoding="utf-8")
    m = REFERENCE.search(text)
    if not m:
        return []
    want = key_reference()
    if m.group(2) == want:
        return []
    if write:
        doc.write_text(text[:m.start(2)] + want + text[m.end(2):], encoding="utf-8")
    return [f"{doc.relative_to(ROOT)}: the key reference"]


def main() -> int:
    stale = [s for doc in sorted((ROOT / "docs").rglob("*.md")) for s in sync(doc, write=True)]
    stale += sync_reference(ROOT / "docs" / "connectors.md", write=True)
    for s in stale:
        print("updated", s)
    return 0


if __name__ == "__main__":
    sys.exit(main())
