#!/usr/bin/env python3
"""Runs the consumer from a checkout, without installing it:

    python3 docker/consumer/webhook_consumer.py run --handler mymod:handle

The package is the folder webhook_consumer/ beside this file (a package
folder comes before a module of the same name on sys.path, so
`import webhook_consumer` finds the package).  Installed with
`pip install ./docker/consumer`, the same command is `webhook-consumer`."""

import sys

from webhook_consumer.cli import main

if __name__ == "__main__":
    sys.exit(main())
