"""python -m meshlink_gw.cli: the `meshlink` command."""
import sys

from meshlink_gw.cli import main

sys.exit(main())
