import sys

from services.tenant.cli import main

sys.exit(main(sys.argv[1:]))
