import sys

from tools.chaos.scenario import main

sys.exit(main())
