"""python -m meshlink_gw.sim: the `meshlink sim` command."""
import sys

from .cli import main

sys.exit(main())
