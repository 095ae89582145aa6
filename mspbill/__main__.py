from mspbill.cli import main

raise SystemExit(main())
