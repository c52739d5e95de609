"""The gateway: variants side by side, A/B splits, shadow traffic and canary rollout in front of Triton."""
