"""The Triton model repository: configs from the model_config protobuf, manifest, atomic publishing."""
