"""Session setup shared by the Python tests: the `tessera` binary must be built, and the zoo is
generated once (cached by content hash) before collection, so tests can be parametrized by it."""
import atexit
import json
import os
import pathlib
import shutil
import subprocess
import sys
import tempfile

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from tessera_testlib import BUILD, REPO, TESSERA  # noqa: E402

# The zoo is a cache keyed by the generator's content hash (tests/zoo/generate.py), so it may
# live outside the build tree and be reused by later runs on the same machine.
ZOO_DIR = pathlib.Path(os.environ.get("TESSERA_ZOO_DIR", BUILD / "zoo"))

# The CLI caches compilations; tests keep theirs apart from the user's cache and each run's.
if "TESSERA_CACHE_DIR" not in os.environ:
    os.environ["TESSERA_CACHE_DIR"] = tempfile.mkdtemp(prefix="tessera-test-cache-")
    atexit.register(shutil.rmtree, os.environ["TESSERA_CACHE_DIR"], True)


def pytest_configure(config):
    if not TESSERA.exists():
        raise pytest.UsageError(f"{TESSERA} not found: build first (scripts/build.sh)")
    if hasattr(config, "workerinput"):  # xdist workers: the controller generated it
        return
    if os.environ.get("TESSERA_SKIP_ZOO_GENERATION"):
        return
    subprocess.run([sys.executable, str(REPO / "tests/zoo/generate.py"), "--out", str(ZOO_DIR),
                    "--tier", "all", "--jobs", str(os.cpu_count() or 2)], check=True)


def zoo_models(tier):
    """Manifest entries of one zoo tier (empty if the zoo was not generated)."""
    manifest = ZOO_DIR / "manifest.json"
    if not manifest.exists():
        return []
    return [m for m in json.loads(manifest.read_text())["models"] if m["tier"] == tier]
