import sys

from parcelguard.cli import main

sys.exit(main())
