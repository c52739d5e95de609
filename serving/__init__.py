"""tritonzoo serving side: runs Triton on a published repository. Needs neither torch nor build/."""
