import sys

from gmv.tools.simulator.cli import main

sys.exit(main())
