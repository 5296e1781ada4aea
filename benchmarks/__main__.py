import sys

from benchmarks.backup_restore import main

sys.exit(main())
