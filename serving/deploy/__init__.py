"""Past one machine: Kubernetes manifests (a Kustomize base plus cpu and gpu overlays) for a published repository.

`invoke k8s` calls `write_kustomize`. Everything here reads the repository (its manifest and each model's
config.pbtxt) and writes YAML; it starts nothing and needs no cluster, no torch and nothing from build/.
"""
