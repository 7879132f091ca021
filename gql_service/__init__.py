"""gql_service: a GraphQL API for closing project sales opportunities and their quotes."""

__version__ = "0.1.0"
