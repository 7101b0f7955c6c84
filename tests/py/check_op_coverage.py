"""Fails unless every op in Tessera's registry was run by a differential test against
TensorFlow in this test run (recorded by tessera_testlib.run_graph), or is on the short list
below of ops that only make sense inside a SavedModel and are covered by the fixture/zoo tests."""
import sys

from tessera_testlib import COVERAGE_DIR, run_cli

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
}


def main():
    registry = set(run_cli("ops").stdout.split())
    ran = set()
    for f in COVERAGE_DIR.glob("*.txt"):
        ran.update(line.strip() for line in f.read_text().splitlines() if line.strip())
    missing = sorted(registry - ran - set(COVERED_BY_SAVED_MODELS))
    print(f"op coverage: {len(registry) - len(missing)}/{len(registry)} registered ops have a "
          f"differential test against TensorFlow")
    if missing:
        print("ops without a differential test: " + ", ".join(missing))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
