from hafast.cli import main

raise SystemExit(main())
