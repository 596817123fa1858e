"""One module per kind: desired state, observation, pure plan and deletion."""
