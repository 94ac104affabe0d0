import sys

from alexlib.cli import main

sys.exit(main())
