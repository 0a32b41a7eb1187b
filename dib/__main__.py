import sys

from dib.cli.main import main

sys.exit(main())
