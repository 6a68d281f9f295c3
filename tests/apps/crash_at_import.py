"""An app whose import kills the process: with --lazy-apps every worker dies at start-up."""
import os

os._exit(3)
