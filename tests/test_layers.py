"""The dependency arrows point one way: cli -> tools -> runtime -> engines -> types, and the runtime
imports no pandas, HTTP or graph-editing code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path


def test_runtime_import_stays_light():
    code = (
        "import sys, nnperf, nnperf.runtime\n"
        "import numpy as np\n"
        "from onnx import helper, TensorProto\n"
        "g = helper.make_graph([helper.make_node('Identity', ['x'], ['y'])], 'g',"
        " [helper.make_tensor_value_info('x', TensorProto.FLOAT, [1])],"
        " [helper.make_tensor_value_info('y', TensorProto.FLOAT, [1])])\n"
        "m = helper.make_model(g, opset_imports=[helper.make_opsetid('', 17)], ir_version=8)\n"
        "with nnperf.create(m) as s: s.run(np.ones(1, np.float32))\n"
        "bad = [n for n in ('pandas', 'fastapi', 'starlette', 'uvicorn', 'nnperf.optimize', 'nnperf.profiler.tables', 'onnxruntime.quantization', 'nnperf.cli', 'rich') if n in sys.modules]\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"runtime pulled in: {out.stdout.strip()}"


# -- the dependency arrows: cli -> tools -> runtime -> engines -> types -------------------------

SRC = Path(__file__).resolve().parents[1] / "src"

#: Each layer may import its own and lower layers only. The package root sits on top: it
#: re-exports the public API.
LAYERS: dict[str, int] = {
    # types: values, errors, device strings, model bytes and the zoo that builds them
    "nnperf.types": 0,
    "nnperf.errors": 0,
    "nnperf.device": 0,
    "nnperf.model": 0,
    "nnperf.zoo": 0,
    "nnperf.flops": 0,
    "nnperf.version": 0,
    "nnperf.engines": 1,
    "nnperf.runtime": 2,
    # tools: each builds on the runtime
    "nnperf.bench": 3,
    "nnperf.profiler": 3,
    "nnperf.optimize": 3,
    "nnperf.tune": 3,
    "nnperf.serve": 3,
    "nnperf.analyze": 3,
    "nnperf.protocol": 3,
    "nnperf.tiling": 3,
    "nnperf.table": 3,
    "nnperf.report": 3,
    "nnperf.compare": 3,
    "nnperf.deploy": 3,
    "nnperf.cli": 4,
    "nnperf.__main__": 5,
    "nnperf": 5,
}


def _layer(module: str) -> int:
    parts = module.split(".")
    for n in range(len(parts), 0, -1):
        prefix = ".".join(parts[:n])
        if prefix in LAYERS:
            return LAYERS[prefix]
    raise KeyError(module)


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted((SRC / "nnperf").rglob("*.py")):
        parts = path.relative_to(SRC).with_suffix("").parts
        module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out.append((module, path))
    return out


def test_every_module_has_a_layer():
    unknown = []
    for module, _ in _modules():
        try:
            _layer(module)
        except KeyError:
            unknown.append(module)
    assert unknown == [], f"add these modules to LAYERS in tests/test_layers.py: {unknown}"


def test_no_upward_imports_eager_or_lazy():
    """Every ``import nnperf...`` anywhere in a module (top level, inside functions, under
    TYPE_CHECKING) points to the same or a lower layer."""
    upward = []
    for module, path in _modules():
        own = _layer(module)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                targets = [node.module]
                if node.module == "nnperf":  # from nnperf import x: the root, or a submodule
                    targets = [f"nnperf.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                continue
            for target in targets:
                if not target.startswith("nnperf"):
                    continue
                try:
                    theirs = _layer(target)
                except KeyError:
                    theirs = LAYERS["nnperf"]  # a name re-exported by the root
                if theirs > own:
                    upward.append(f"{module}:{node.lineno} imports {target}")
    assert upward == [], "upward imports:\n" + "\n".join(upward)
