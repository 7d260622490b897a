import sys

from kfm_gitops.cli import main

sys.exit(main())
