"""druid-access-operator: Druid basic-security and Pivot connections as Kubernetes resources."""

# ``druid_access`` is split over two distributions: this one (the operator) owns the package
# and this file; ``druid-access-testing`` (``testing/`` in the repository) ships only
# ``druid_access/testing/**``, with no ``druid_access/__init__.py`` of its own, so that
# ``druid_access.testing.*`` imports keep their paths while the operator's wheel and image
# carry no test servers.
#
# - Both installed from wheels into one environment: the testing wheel's files land in the
#   same ``site-packages/druid_access/`` directory, an ordinary subpackage; nothing else needed.
# - Installed apart (``pip install -e`` of each, whose editable installs are ``.pth`` path
#   entries to ``operator/`` and ``testing/src/``; or one as a wheel and the other editable):
#   ``druid_access`` is found in one directory only. ``extend_path`` adds every other
#   ``druid_access/`` directory on ``sys.path`` to ``__path__``, so ``druid_access.testing``
#   is found in whichever holds it. Python still imports this regular package (and this
#   file) whatever the order of ``sys.path``: a directory without ``__init__.py`` is only a
#   namespace portion, taken when no regular package of the name is found.
from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)

__version__ = "0.1.0"
