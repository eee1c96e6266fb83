import sys

from widgetspy.cli import main

sys.exit(main())
