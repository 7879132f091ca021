"""Entry point for ``python -m gql_service``."""

from gql_service.cli import main

raise SystemExit(main())
