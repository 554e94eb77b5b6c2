"""The wheel a user installs holds every package and data file of the checkout.

An editable install finds modules in the working tree whatever pyproject.toml lists, so
only a built wheel shows a package left out (``dynbench.guard`` once was).
scripts/check-wheel.sh goes further: it installs the wheel into a fresh virtual
environment and runs the installed command.
"""

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_wheel_holds_every_package_and_data_file(tmp_path):
    # a copy without build/: setuptools packs whatever an earlier build left in build/lib
    source = tmp_path / "source"
    skip = shutil.ignore_patterns(".*", "build", "dist", "*.egg-info", "__pycache__", "reports")
    shutil.copytree(ROOT, source, symlinks=True, ignore=skip)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation"]
        + ["-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    names = set(zipfile.ZipFile(next(tmp_path.glob("dynbench-*.whl"))).namelist())
    packages = sorted(
        p.parent.relative_to(ROOT).as_posix()
        for p in (ROOT / "dynbench").glob("**/__init__.py")
        if "suites" not in p.parts
    )
    assert "dynbench/guard" in packages and len(packages) >= 9
    missing = [p for p in packages if f"{p}/__init__.py" not in names]
    assert not missing, f"packages left out of the wheel: {missing}"
    data = [f"dynbench/suites/{p.name}" for p in (ROOT / "suites").glob("*.toml")]
    data += [f"dynbench/published/{p.name}" for p in (ROOT / "dynbench/published").glob("*.csv")]
    data += ["dynbench/report/templates/report.html.j2"]
    assert "dynbench/suites/default.toml" in data
    assert not [d for d in data if d not in names]
