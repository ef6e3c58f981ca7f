"""Exit 0 when the package is installed, editable, from this checkout.

`make install` skips pip when pyproject.toml has not changed; but another checkout installed since
(a second clone, a CI run's) takes the `orchestrator` command and the imports with it, and this one
must then be installed again.
"""

import importlib.metadata
import json
import sys
import tomllib
from pathlib import Path

name = tomllib.loads(Path("pyproject.toml").read_text())["project"]["name"]
try:
    origin = json.loads(importlib.metadata.distribution(name).read_text("direct_url.json") or "{}")
except importlib.metadata.PackageNotFoundError:
    sys.exit(1)
sys.exit(0 if origin.get("url") == Path.cwd().resolve().as_uri() else 1)
