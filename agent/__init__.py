"""The policy, evaluation, the demo and the inference server."""
