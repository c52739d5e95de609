"""`invoke soak`: a long run through the gateway with faults injected at known times, and its report."""
