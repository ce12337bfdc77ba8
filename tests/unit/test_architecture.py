"""The import contract (docs/architecture.md): layers import only downward, and processors/ stays pure.

    gatewatch.streams.cli              click commands only
    gatewatch.streams.app              demo, drill, replay, simulate, supervisor, serve, the pytest plugin
    gatewatch.streams.stages | gatewatch.sinks | gatewatch.streams.ext   (independent of each other)
    gatewatch.streams.runtime          Kafka clients, the worker skeleton, brokers, keys, logs, HTTP
    gatewatch.processors               pure logic
    gatewatch.schemas | gatewatch.configs           data

Every import is checked, function-level ones included; a failure names file:line and the import.
"""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FOLDERS = {"streams": "gatewatch.streams", "processors": "gatewatch.processors", "sinks": "gatewatch.sinks",
           "schemas": "gatewatch.schemas", "configs": "gatewatch.configs", "gatewatch": "gatewatch"}
LAYERS = [  # top to bottom; a module may import its own layer and those below
    ("gatewatch.streams.cli",),
    ("gatewatch.streams.app",),
    ("gatewatch.streams.stages", "gatewatch.sinks", "gatewatch.streams.ext"),
    ("gatewatch.streams.runtime",),
    ("gatewatch.processors",),
    ("gatewatch.schemas", "gatewatch.configs"),
]
INDEPENDENT = [("gatewatch.streams.stages", "gatewatch.sinks"), ("gatewatch.streams.stages", "gatewatch.streams.ext"),
               ("gatewatch.sinks", "gatewatch.streams.ext")]
IMPURE_STDLIB = {"socket", "sqlite3", "subprocess", "threading", "asyncio", "urllib", "http", "os", "shutil",
                 "tempfile", "signal", "select", "multiprocessing", "requests", "httpx"}
IMPURE_CALLS = ("time.time", "time.monotonic", "datetime.now", "datetime.utcnow", "open")


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT)
    parts = list(rel.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    head = FOLDERS[parts[0]]
    return ".".join([head, *parts[1:]]) if head != "gatewatch" else ".".join(["gatewatch", *parts[1:]])


def layer_of(mod: str) -> int | None:
    for i, names in enumerate(LAYERS):
        if any(mod == n or mod.startswith(n + ".") for n in names):
            return i
    return None


def group_of(mod: str) -> str | None:
    for names in LAYERS:
        for n in names:
            if mod == n or mod.startswith(n + "."):
                return n
    return None


def imports(path: Path, mod: str):
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                yield node.lineno, a.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = mod.split(".")[: -node.level] if not path.name == "__init__.py" else \
                    mod.split(".")[: len(mod.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            yield node.lineno, target
            for a in node.names:  # `from gatewatch.streams import cli` imports gatewatch.streams.cli
                yield node.lineno, f"{target}.{a.name}"


def sources():
    for folder in FOLDERS:
        for p in sorted((ROOT / folder).rglob("*.py")):
            yield p


def upward_imports(files) -> list[str]:
    """(path, module name) pairs -> one line per import that breaks the contract."""
    bad = []
    for path, mod in files:
        me = layer_of(mod)
        if me is None:
            continue
        for line, target in imports(path, mod):
            if not target.startswith("gatewatch."):
                continue
            other = layer_of(target)
            if other is None:
                continue
            if other < me:
                bad.append(f"{_rel(path)}:{line}: {mod} imports {target} (upward)")
            g1, g2 = group_of(mod), group_of(target)
            if g1 != g2 and any({g1, g2} == set(pair) for pair in INDEPENDENT):
                bad.append(f"{_rel(path)}:{line}: {mod} imports {target} (independent layers)")
    return bad


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else path.name


def test_layers_import_only_downward():
    bad = upward_imports((p, module_name(p)) for p in sources())
    assert not bad, "\n".join(bad)


def test_processors_are_pure():
    bad = []
    for path in sorted((ROOT / "processors").rglob("*.py")):
        mod = module_name(path)
        text = path.read_text(encoding="utf-8")
        for line, target in imports(path, mod):
            top = target.split(".")[0]
            if target.startswith("urllib.parse"):  # string parsing, no I/O
                continue
            if top in IMPURE_STDLIB or top in ("confluent_kafka", "faust", "aiokafka", "click", "prometheus_client"):
                bad.append(f"{_rel(path)}:{line}: imports {target}")
        tree = ast.parse(text)
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = f.id if isinstance(f, ast.Name) else \
                    f"{f.value.id}.{f.attr}" if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else None
                if name in IMPURE_CALLS:
                    bad.append(f"{_rel(path)}:{node.lineno}: calls {name}()")
    assert not bad, "\n".join(bad)


def test_the_contract_catches_an_upward_import(tmp_path):
    """The check itself: a processor importing the runtime is named with its file and line."""
    probe = tmp_path / "probe.py"
    probe.write_text("import orjson\n\ndef f():\n    from gatewatch.streams.runtime import kafka\n")
    assert upward_imports([(probe, "gatewatch.processors.probe")]) == [
        "probe.py:4: gatewatch.processors.probe imports gatewatch.streams.runtime (upward)",
        "probe.py:4: gatewatch.processors.probe imports gatewatch.streams.runtime.kafka (upward)"]
    sibling = tmp_path / "sib.py"
    sibling.write_text("from gatewatch.sinks.worm import store\n")
    assert upward_imports([(sibling, "gatewatch.streams.stages.x")]) == [
        "sib.py:1: gatewatch.streams.stages.x imports gatewatch.sinks.worm (independent layers)",
        "sib.py:1: gatewatch.streams.stages.x imports gatewatch.sinks.worm.store (independent layers)"]
