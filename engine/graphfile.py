"""Graph files: versioned JSON validated by a shipped schema; atomic saves; graphs inside PNGs.

Loading never executes anything from the file: it is parsed as JSON, checked against the schema,
migrated by plain functions, and turned into the graph model.
"""

from __future__ import annotations

import json
import os
import struct
import zlib
from collections.abc import Callable
from dataclasses import replace
from functools import lru_cache
from importlib.resources import files
from pathlib import Path
from typing import Any, BinaryIO

from fathom.engine.errors import GraphFileError, echo
from fathom.engine.fileio import atomic_write_text
from fathom.engine.graph import Edge, Exposed, Graph, NodeInstance, SubgraphDef
from fathom.engine.provenance import canonical_json, sha256_text

FORMAT = "fathom.graph"
SUBGRAPH_FORMAT = "fathom.subgraph"
VERSION = 1
PNG_KEY = "fathom.graph"

#: Deepest nesting of arrays and objects a graph file may have. Real graphs stay near ten levels
#: (each nested subgraph adds two); the schema check and everything after it recurse once per
#: level, so a deeper file would end in a RecursionError instead of a message.
MAX_DEPTH = 100

#: Characters of a file path a message repeats (paths come from users and other files).
PATH_ECHO = 200

#: Largest graph text read from a PNG, decompressed: a zTXt/iTXt chunk is zlib data, and a few
#: kilobytes of it can claim gigabytes.
MAX_EMBEDDED_BYTES = 64 << 20

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Migrations from file version N to N+1, each a pure function on the JSON document.
Migration = Callable[[dict[str, Any]], dict[str, Any]]
MIGRATIONS: dict[int, Migration] = {}


@lru_cache(maxsize=1)
def schema() -> dict[str, Any]:
    text = files("fathom.engine").joinpath("schema/graph.schema.json").read_text("utf-8")
    return json.loads(text)


@lru_cache(maxsize=2)
def _validator(kind: str) -> Any:
    import jsonschema

    s = schema()
    if kind == "subgraph":
        s = {
            "$schema": s["$schema"],
            "$defs": s["$defs"],
            "allOf": [
                {
                    "type": "object",
                    "required": ["format", "version", "name"],
                    "properties": {
                        "format": {"const": SUBGRAPH_FORMAT},
                        "version": {"const": VERSION},
                        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$"},
                    },
                },
                {"$ref": "#/$defs/subgraph_file"},
            ],
        }
        s["$defs"] = dict(s["$defs"])
        sub = dict(s["$defs"]["subgraph"])
        sub["properties"] = {**sub["properties"], "format": {}, "version": {}, "name": {}}
        s["$defs"]["subgraph_file"] = sub
    return jsonschema.Draft202012Validator(s)


# ---- reading -------------------------------------------------------------------------------


def parse_text(text: str, source: str = "<graph>") -> dict[str, Any]:
    """The JSON document in ``text``, or GraphFileError: malformed, nested deeper than
    ``MAX_DEPTH``, or not an object. Every graph file and embedded graph comes through here."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        # Some decoder messages end in "at" ("Unterminated string starting at"): say it once.
        what = exc.msg.removesuffix(" at")
        raise GraphFileError(
            f"{source} is not valid JSON: {what} at line {exc.lineno}, column {exc.colno}. "
            "Fix: repair the file, or restore its .bak copy."
        ) from None
    except RecursionError:  # the decoder recurses once per level: [[[[...]]]] exhausts it
        raise GraphFileError(_too_deep(source)) from None
    if _nesting_exceeds(doc, MAX_DEPTH):
        raise GraphFileError(_too_deep(source))
    if not isinstance(doc, dict):
        raise GraphFileError(f"{source} holds a JSON {type(doc).__name__}, not a graph object.")
    return doc


def _too_deep(source: str) -> str:
    """One message for both ways depth is found (the decoder's recursion, or the walk after)."""
    return (
        f"{source} nests arrays or objects more than {MAX_DEPTH} levels deep, which no graph "
        "does. Fix: check that it is a Fathom graph file, or restore its .bak copy."
    )


def _nesting_exceeds(doc: Any, limit: int) -> bool:
    """Whether arrays and objects in ``doc`` nest deeper than ``limit``; walked with a stack of
    its own, since recursion is what a deep document breaks."""
    stack = [(doc, 1)] if isinstance(doc, (dict, list)) else []
    while stack:
        value, depth = stack.pop()
        if depth > limit:
            return True
        for child in value.values() if isinstance(value, dict) else value:
            if isinstance(child, (dict, list)):
                stack.append((child, depth + 1))
    return False


def read_png_graph(path: Path) -> str:
    """The graph JSON embedded in a PNG that Fathom saved. Only the chunk list is walked: the
    pixels are never decoded, so opening a huge picture as a graph costs no memory."""
    shown = echo(str(path), PATH_ECHO)
    try:
        with open(path, "rb") as fh:
            text = _png_text(fh, PNG_KEY)
    except OSError as exc:
        raise GraphFileError(
            f"{shown} cannot be read as an image: {exc.strerror or exc}."
        ) from None
    except (ValueError, zlib.error) as exc:
        raise GraphFileError(f"{shown} cannot be read as an image: {exc}.") from None
    if not text:
        raise GraphFileError(f"{shown} has no graph embedded; only PNGs saved by Fathom do.")
    return text


def _png_text(fh: BinaryIO, key: str) -> str | None:
    """The text stored under ``key`` in a PNG's tEXt, zTXt or iTXt chunks (Fathom writes iTXt),
    else None; other chunks, the image data included, are skipped unread."""
    if fh.read(8) != _PNG_SIGNATURE:
        raise ValueError("it is not a PNG file")
    want = key.encode("latin-1") + b"\0"
    while True:
        head = fh.read(8)
        if len(head) < 8:
            raise ValueError("it is truncated (no IEND chunk)")
        length, kind = struct.unpack(">I4s", head)
        if kind == b"IEND":
            return None
        if kind in (b"tEXt", b"zTXt", b"iTXt") and length <= MAX_EMBEDDED_BYTES:
            body = fh.read(length)
            if body.startswith(want):
                return _chunk_text(kind, body[len(want) :])
            fh.seek(4, os.SEEK_CUR)  # the CRC
        else:
            fh.seek(length + 4, os.SEEK_CUR)


def _chunk_text(kind: bytes, body: bytes) -> str:
    """A text chunk's value after its keyword: tEXt is Latin-1, zTXt compressed Latin-1, iTXt
    UTF-8 (compressed when its flag says so) after a language tag and a translated keyword."""
    if kind == b"tEXt":
        return body.decode("latin-1")
    if kind == b"zTXt":
        return _inflate(body[1:]).decode("latin-1")
    compressed, rest = body[:1] == b"\x01", body[2:]
    _language, _translated, value = rest.split(b"\0", 2)
    return (_inflate(value) if compressed else value).decode("utf-8")


def _inflate(data: bytes) -> bytes:
    """zlib data, refused past ``MAX_EMBEDDED_BYTES`` before more is inflated."""
    inflater = zlib.decompressobj()
    out = inflater.decompress(data, MAX_EMBEDDED_BYTES)
    if inflater.unconsumed_tail:
        raise ValueError(f"its embedded graph is over {MAX_EMBEDDED_BYTES >> 20} MB")
    return out


def read_document(path: str | os.PathLike[str]) -> dict[str, Any]:
    p = Path(path)
    shown = echo(str(p), PATH_ECHO)
    if not p.exists():
        raise GraphFileError(f"graph file {shown} does not exist.")
    if p.suffix.lower() == ".png":
        return parse_text(read_png_graph(p), shown)
    try:
        text = p.read_text("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise GraphFileError(f"{shown} cannot be read as text: {exc}") from None
    return parse_text(text, shown)


def migrate(
    doc: dict[str, Any],
    source: str = "<graph>",
    migrations: dict[int, Migration] | None = None,
    current: int = VERSION,
) -> dict[str, Any]:
    migrations = MIGRATIONS if migrations is None else migrations
    fmt = doc.get("format")
    if fmt != FORMAT:
        raise GraphFileError(
            f"{source} has format {echo(repr(fmt))}, expected {FORMAT!r}: it is not a Fathom "
            "graph file."
        )
    version = doc.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise GraphFileError(
            f"{source} has version {echo(repr(version))}; expected a whole number >= 1."
        )
    if version > current:
        raise GraphFileError(
            f"{source} is graph format version {version}, newer than this Fathom reads "
            f"(version {current}). Fix: update Fathom Studio."
        )
    while version < current:
        step = migrations.get(version)
        if step is None:
            raise GraphFileError(f"no migration from graph version {version} to {version + 1}.")
        doc = step(dict(doc))
        version += 1
        doc["version"] = version
    return doc


def check_schema(doc: dict[str, Any], source: str = "<graph>", kind: str = "graph") -> None:
    errors = sorted(_validator(kind).iter_errors(doc), key=lambda e: list(e.absolute_path))
    if errors:
        lines = [f"  - at {_json_path(e.absolute_path)}: {_schema_message(e)}" for e in errors[:20]]
        more = f"\n  ... and {len(errors) - 20} more" if len(errors) > 20 else ""
        raise GraphFileError(
            f"{source} does not match the graph schema ({len(errors)} problem"
            f"{'s' if len(errors) != 1 else ''}):\n" + "\n".join(lines) + more
        )


def _json_path(path: Any) -> str:
    out = "$"
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else f".{echo(part)}"
    return out


def _schema_message(error: Any) -> str:
    """jsonschema's message with the offending value cut short: it quotes the value whole, and a
    file's value can be 100 KB long."""
    whole = repr(error.instance)
    message = error.message
    if len(whole) > len(echo(whole)):
        message = message.replace(whole, echo(whole))
    return echo(message, 300)


def from_document(doc: dict[str, Any], source: str = "<graph>", registry: Any = None) -> Graph:
    doc = migrate(doc, source)
    check_schema(doc, source)
    graph = _build(doc, source, registry)
    graph.meta = dict(doc.get("meta", {}))
    graph.ui = json.loads(json.dumps(doc.get("editor", {})))
    return graph


def _build(doc: dict[str, Any], source: str, registry: Any) -> Graph:
    graph = Graph()
    for name, sub in doc.get("subgraphs", {}).items():
        graph.subgraphs[name] = _subgraph_from(name, sub, source, registry)
    for n in doc["nodes"]:
        if n["id"] in graph.nodes:
            raise GraphFileError(
                f"{source}: node id '{echo(n['id'])}' is used twice. Fix: give each node its "
                "own id."
            )
        type_id = n["type"]
        params = dict(n.get("params", {}))
        version = n.get("version")
        cls = registry.get(type_id) if registry is not None else None
        if cls is not None:
            type_id = cls.type_id  # legacy ids become the current id
            if version is not None and version > cls.version:
                raise GraphFileError(
                    f"{source}: node '{echo(n['id'])}' was saved by version {version} of "
                    f"'{type_id}', newer than the installed version {cls.version}. "
                    "Fix: update Fathom Studio or the plugin that provides this node."
                )
            if version is not None and version < cls.version:
                params = cls.upgrade(params, version)
            version = cls.version
        graph.nodes[n["id"]] = NodeInstance(
            n["id"],
            type_id,
            params,
            n.get("bypass", False),
            n.get("mute", False),
            n.get("title"),
            version,
        )
    for e in doc["edges"]:
        graph.edges.append(Edge(e["from"][0], e["from"][1], e["to"][0], e["to"][1]))
    return graph


def _subgraph_from(name: str, sub: dict[str, Any], source: str, registry: Any) -> SubgraphDef:
    inner = _build(sub, f"{source} (subgraph '{echo(name)}')", registry)

    def exposed(key: str) -> list[Exposed]:
        return [Exposed(x["name"], x["node"], x["port"]) for x in sub.get(key, [])]

    return SubgraphDef(
        name,
        inner,
        exposed("inputs"),
        exposed("outputs"),
        exposed("params"),
        sub.get("doc", ""),
        sub.get("version", 1),
    )


def load(path: str | os.PathLike[str], registry: Any = None) -> Graph:
    """Read a graph file (or a PNG that Fathom saved) into a Graph; never runs anything."""
    return from_document(read_document(path), echo(str(path), PATH_ECHO), registry)


def loads(text: str, registry: Any = None, source: str = "<graph>") -> Graph:
    return from_document(parse_text(text, source), source, registry)


# ---- writing -------------------------------------------------------------------------------


def _nodes_doc(graph: Graph, registry: Any) -> list[dict[str, Any]]:
    out = []
    for inst in graph.nodes.values():
        cls = registry.get(inst.type) if registry is not None else None
        d: dict[str, Any] = {"id": inst.id, "type": inst.type}
        version = cls.version if cls is not None else inst.version
        if version is not None:
            d["version"] = version
        d["params"] = {k: _jsonable(inst.params[k]) for k in sorted(inst.params)}
        if inst.bypass:
            d["bypass"] = True
        if inst.mute:
            d["mute"] = True
        if inst.title:
            d["title"] = inst.title
        out.append(d)
    return out


def _jsonable(v: Any) -> Any:
    if isinstance(v, tuple):
        return [_jsonable(x) for x in v]
    if isinstance(v, Path):
        return str(v)
    return v


def _edges_doc(graph: Graph) -> list[dict[str, Any]]:
    return [{"from": [e.src, e.src_port], "to": [e.dst, e.dst_port]} for e in graph.edges]


def _subgraphs_doc(graph: Graph, registry: Any) -> dict[str, Any]:
    out = {}
    for name in sorted(graph.subgraphs):
        out[name] = subgraph_body(graph.subgraphs[name], registry)
    return out


def subgraph_body(d: SubgraphDef, registry: Any = None) -> dict[str, Any]:
    body: dict[str, Any] = {"doc": d.doc, "version": d.version}
    for key in ("inputs", "outputs", "params"):
        body[key] = [{"name": x.name, "node": x.node, "port": x.port} for x in getattr(d, key)]
    body["nodes"] = _nodes_doc(d.graph, registry)
    body["edges"] = _edges_doc(d.graph)
    if d.graph.subgraphs:
        body["subgraphs"] = _subgraphs_doc(d.graph, registry)
    return body


def to_document(graph: Graph, registry: Any = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"format": FORMAT, "version": VERSION}
    meta = {k: v for k, v in graph.meta.items() if not k.startswith("_")}
    if meta:
        doc["meta"] = meta
    doc["nodes"] = _nodes_doc(graph, registry)
    doc["edges"] = _edges_doc(graph)
    if graph.subgraphs:
        doc["subgraphs"] = _subgraphs_doc(graph, registry)
    if graph.ui:
        doc["editor"] = graph.ui
    return doc


def dumps(doc: dict[str, Any]) -> str:
    return json.dumps(doc, indent=2, ensure_ascii=False) + "\n"


def save(graph: Graph, path: str | os.PathLike[str], registry: Any = None) -> Path:
    """Atomic: write a temp file, keep the previous file as ``.bak``, rename into place."""
    p = Path(path)
    doc = to_document(graph, registry)
    check_schema(doc, str(p))  # never write a file that would not load again
    atomic_write_text(p, dumps(doc), backup=True)
    return p


def execution_part(doc: dict[str, Any]) -> dict[str, Any]:
    """The document without editor data: what decides the result."""
    return {k: v for k, v in doc.items() if k not in ("editor", "meta")}


def graph_hash(doc: dict[str, Any]) -> str:
    return sha256_text(canonical_json(execution_part(doc)))


# ---- subgraph library ----------------------------------------------------------------------


def library_dirs() -> list[Path]:
    env = os.environ.get("FATHOM_SUBGRAPH_PATH")
    if env:
        return [Path(p) for p in env.split(os.pathsep) if p]
    base = os.environ.get("XDG_CONFIG_HOME", os.path.expanduser("~/.config"))
    return [Path(base) / "fathom" / "subgraphs"]


def save_subgraph(
    d: SubgraphDef,
    folder: str | os.PathLike[str],
    registry: Any = None,
    uses: dict[str, SubgraphDef] | None = None,
) -> Path:
    """Write ``d`` as ``folder/NAME.json``. ``uses`` (usually the graph's ``subgraphs``) supplies
    the definitions of subgraphs nested in ``d``, bundled so the file stands on its own."""
    d = _with_dependencies(d, uses or {})
    doc = {
        "format": SUBGRAPH_FORMAT,
        "version": VERSION,
        "name": d.name,
        **subgraph_body(d, registry),
    }
    check_schema(doc, d.name, kind="subgraph")
    path = Path(folder) / f"{d.name}.json"
    atomic_write_text(path, dumps(doc), backup=True)
    return path


def _with_dependencies(d: SubgraphDef, available: dict[str, SubgraphDef]) -> SubgraphDef:
    """A copy of ``d`` whose own ``subgraphs`` hold every definition its instances (and theirs)
    use from ``available``."""
    graph = d.graph.copy()
    todo = [graph]
    while todo:
        for inst in todo.pop().nodes.values():
            name = inst.type.removeprefix("subgraph.")
            if name != inst.type and name not in graph.subgraphs and name in available:
                graph.subgraphs[name] = available[name]
                todo.append(available[name].graph)
    return replace(d, graph=graph)


class SubgraphLibrary:
    """Subgraph definitions in folders, found by name when a graph uses one it does not hold."""

    def __init__(self, folders: list[Path] | None = None, registry: Any = None) -> None:
        self.folders = library_dirs() if folders is None else folders
        self.registry = registry
        self._loaded: dict[str, SubgraphDef | None] = {}

    def __call__(self, name: str) -> SubgraphDef | None:
        if name not in self._loaded:
            self._loaded[name] = self._find(name)
        return self._loaded[name]

    def stamp(self, name: str) -> tuple[tuple[Any, ...], ...]:
        """The identity of the files that may hold ``name`` (NAME.json in each folder, as
        folder, inode, size, mtime and ctime, or folder and None): a plan that used the
        definition is stale once this changes."""
        out: list[tuple[Any, ...]] = []
        for folder in self.folders:
            try:
                st = (Path(folder) / f"{name}.json").stat()
            except OSError:
                out.append((str(folder), None))
                continue
            out.append((str(folder), st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns))
        return tuple(out)

    def forget(self, name: str) -> None:
        """Read ``name`` again on its next lookup (its file changed)."""
        self._loaded.pop(name, None)

    def _find(self, name: str) -> SubgraphDef | None:
        for folder in self.folders:
            path = folder / f"{name}.json"
            if path.exists():
                doc = parse_text(path.read_text("utf-8"), str(path))
                if doc.get("format") != SUBGRAPH_FORMAT:
                    raise GraphFileError(f"{path} is not a Fathom subgraph file.")
                check_schema(doc, str(path), kind="subgraph")
                return _subgraph_from(name, doc, str(path), self.registry)
        return None

    def names(self) -> list[str]:
        out: set[str] = set()
        for folder in self.folders:
            if folder.is_dir():
                out.update(p.stem for p in folder.glob("*.json"))
        return sorted(out)
