"""Triton model configs from the model_config protobuf; publishing itself is serving.publication's."""
