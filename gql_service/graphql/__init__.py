"""The GraphQL layer: strawberry types, inputs, payloads and thin resolvers."""
