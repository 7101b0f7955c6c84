"""Exact rewrites of ops that tf2onnx passes through unconverted, run after conversion.

    python bench/onnx_fixups.py MODEL.onnx     (in the peers' venv; rewrites the file in place)

TF 2.21's exact gelu lowers to Erfc, which tf2onnx 1.17 leaves as a raw `Erfc` node that ONNX
does not define: it becomes 1 - Erf(x), the same function.
"""
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper


def rewrite_erfc(graph):
    count = 0
    nodes = []
    one = None
    for node in graph.node:
        if node.op_type != 'Erfc' or node.domain not in ('', 'ai.onnx'):
            nodes.append(node)
            continue
        if one is None:
            one = 'bench_fixup_one'
            graph.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), one))
        erf = f'{node.name}/bench_erf'
        nodes.append(helper.make_node('Erf', [node.input[0]], [erf], name=erf))
        nodes.append(helper.make_node('Sub', [one, erf], [node.output[0]], name=node.name))
        count += 1
    del graph.node[:]
    graph.node.extend(nodes)
    return count


def main():
    path = sys.argv[1]
    model = onnx.load(path)
    count = rewrite_erfc(model.graph)
    onnx.checker.check_model(model)
    onnx.save(model, path)
    print(f'{path}: rewrote {count} Erfc node(s) as 1 - Erf')


if __name__ == '__main__':
    main()
