"""HTTP plumbing both APIs share: problem responses, bearer auth, resource shapes, health."""
