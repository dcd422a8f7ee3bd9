"""Every registered experiment is well formed; the full quick run is a slow test."""

import json
import re

import pytest

from measureflow.cli import main
from measureflow.experiments import import_errors, registry

PILLARS = {"ot", "bregman", "spectral", "optim", "conservation", "attention", "inverse",
           "meanfield", "sampling"}


def test_every_experiment_module_imports():
    errors = import_errors()
    assert not errors, "\n".join(f"{m}:\n{tb}" for m, tb in errors.items())


def test_experiments_are_well_formed():
    reg = registry()
    assert reg, "no experiment registered"
    for name, exp in reg.items():
        assert re.fullmatch(r"[a-z]+\.[a-z0-9][a-z0-9\-]*", name), name
        assert exp.pillar in PILLARS, name
        assert re.match(r"arXiv:\d{4}\.\d{5}", exp.paper), (name, exp.paper)
        assert exp.section and exp.title, name
        for mode in ("quick", "full"):
            cfg = exp.config(mode)
            json.dumps(dict(cfg))  # configs must be JSON-serialisable (they are hashed)


@pytest.mark.slow
def test_reproduce_quick_everything(tmp_path):
    assert main(["reproduce", "--quick", "--out", str(tmp_path)]) in (0, 1)
    for name in registry():
        st = json.loads((tmp_path / name / "status.json").read_text())
        assert st["status"] != "error", (name, st["error"])
