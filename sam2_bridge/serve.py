"""The bridge command: ``python -m sam2_bridge.serve --address ipc://bridge.sock ...`` (``--help`` lists the
flags). Its flags and ``main`` are :mod:`sam2_bridge.server.cli`'s; this module only runs them."""

import sys

from sam2_bridge.server.cli import main

if __name__ == "__main__":
    sys.exit(main())
