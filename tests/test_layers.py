"""The dependency arrows point one way: runtime imports no pandas, HTTP or graph-editing code."""

from __future__ import annotations

import subprocess
import sys


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
