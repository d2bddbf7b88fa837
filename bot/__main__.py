"""`python -m bot` is the same program as `esimbot`."""

import sys

from bot.cli import main

sys.exit(main())
