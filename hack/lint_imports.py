"""``lint-imports`` over the whole ``druid_access`` package, both distributions (``make lint``).

The package is split: the operator's ``druid_access`` (``operator/``) and the test servers'
``druid_access.testing`` (``testing/src/``, the ``druid-access-testing`` distribution); the
operator's ``__init__`` extends ``__path__`` to the second directory when it runs. import-linter
(grimp) finds a package's directories with ``importlib.util.find_spec`` without importing it, so
it would see only ``operator/druid_access``, and the contracts naming ``druid_access.testing``
would fail with "not present in the graph". Importing the package first and giving its spec the
extended ``__path__`` (``find_spec`` returns an imported module's ``__spec__``) makes grimp scan
both. Should that stop working, the linter fails on those contracts rather than passing.
"""

from __future__ import annotations

import sys

from importlinter.cli import lint_imports

import druid_access


def main() -> int:
    spec = druid_access.__spec__
    assert spec is not None and spec.submodule_search_locations is not None
    spec.submodule_search_locations[:] = druid_access.__path__
    return lint_imports(no_logo="--no-logo" in sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
