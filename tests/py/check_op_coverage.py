"""Fails unless every op in Tessera's registry was run by a differential test against
TensorFlow in this test run (recorded by tessera_testlib.run_graph), or is on the short list
below of ops that only make sense inside a SavedModel and are covered by the fixture/zoo tests.
Tessera's own fused ops ("Ts*") have no TensorFlow counterpart: each must be compared with the
TensorFlow-op subgraph it replaces in FUSED_OPS_TEST (and the compiled zoo runs them against
TensorFlow's outputs)."""
import sys

from tessera_testlib import COVERAGE_DIR, REPO, run_cli

FUSED_OPS_TEST = REPO / "tests/unit/passes/fused_ops_test.cc"

# Ops exercised through SavedModels (fixtures, zoo), not through standalone graphs: why each.
COVERED_BY_SAVED_MODELS = {
    "_Arg": "function arguments: every zoo model with If/While bodies",
    "VarHandleOp": "resource variables: every TF2 SavedModel in the zoo and fixtures",
    "ReadVariableOp": "resource variables: every TF2 SavedModel",
    "AssignVariableOp": "variable restore: every SavedModel with variables",
    "AssignAddVariableOp": "saved_model_counter (incr_counter)",
    "AssignSubVariableOp": "TF1 AssignSub rewrite; tests/unit",
    "VarIsInitializedOp": "TF1 IsVariableInitialized rewrite; tests/unit",
    "DestroyResourceOp": "no-op on resource teardown",
    "RestoreV2": "variable restore: every SavedModel with variables",
    "ResourceGather": "tests/py/ops/test_graph_ops.py::test_resource_gather_embedding (a SavedModel)",
    "TsRandomUniformIndexed": "Tessera's dropout draw (rewrite_dropout), no TF counterpart: "
                              "tests/unit/passes/rewrite_dropout_test.cc, tests/unit/cpu/random_kernels_test.cc",
}


def main():
    registry = set(run_cli("ops").stdout.split())
    ran = set()
    for f in COVERAGE_DIR.glob("*.txt"):
        ran.update(line.strip() for line in f.read_text().splitlines() if line.strip())
    fused_test = FUSED_OPS_TEST.read_text()
    own = {op for op in registry if op.startswith("Ts") and f'"{op}"' in fused_test}
    missing = sorted(registry - ran - set(COVERED_BY_SAVED_MODELS) - own)
    print(f"op coverage: {len(registry) - len(missing)}/{len(registry)} registered ops have a "
          f"differential test against TensorFlow ({len(own)} of them Tessera's own fused ops, "
          f"checked against the TensorFlow ops they replace)")
    if missing:
        print("ops without a differential test: " + ", ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
