"""Suite-wide setup.

pytest imports ``tracemalloc`` lazily when it reports an exception raised in a ``__del__``; by then
tensorflow-datasets' lazy-import shims (etils) may be installed and that late import fails, turning a
harmless finaliser warning into a test error. Importing it up front keeps the report path working.
"""

import tracemalloc  # noqa: F401
