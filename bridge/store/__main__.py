"""`python -m bridge.store DB FD`: the store's writer process (bridge/store/sqlite/process.py starts it)."""

import sys

from bridge.store.sqlite.process import main

sys.exit(main(sys.argv[1:]))
