"""tritonzoo build pipeline: data, models, training, export, verification and publishing."""
