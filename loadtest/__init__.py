"""Load generation against Triton and the gateway (Locust)."""
