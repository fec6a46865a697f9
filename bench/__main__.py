import sys

from bench.apps import main

sys.exit(main())
