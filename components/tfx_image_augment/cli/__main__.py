import sys

from tfx_image_augment.cli.commands import main

sys.exit(main())
