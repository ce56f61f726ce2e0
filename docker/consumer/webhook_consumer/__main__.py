"""`python3 -m webhook_consumer ...`: the same as `webhook-consumer ...`."""

import sys

from .cli import main

sys.exit(main())
